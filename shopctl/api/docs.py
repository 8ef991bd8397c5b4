"""`GET /openapi.json` and `GET /docs`: the API describes itself, with no internet needed.

The page is Swagger UI, whose files ship in the `swagger-ui-py` package and are served by
us from `/docs/assets/…`: no CDN, so the docs work offline and on a locked-down network.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from pathlib import Path
from typing import Literal

from sanic import Blueprint, Request
from sanic.response import file, html
from sanic.response import json as json_response

from shopctl.errors import ShopError
from shopctl.schemas import Strict, validate

api = Blueprint("docs")

ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}


class AssetPath(Strict):
    name: Literal[tuple(ASSETS)]  # type: ignore[valid-type]


# validatorUrl null: Swagger UI would otherwise ask swagger.io to validate the document.
INIT_SCRIPT = """
window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  withCredentials: true,
  persistAuthorization: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
"""


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


# Only our own origin: proves (and guarantees) that the page needs nothing from outside.
CSP = "; ".join(
    (
        "default-src 'none'",
        f"script-src 'self' {_script_hash(INIT_SCRIPT)}",
        "style-src 'self' 'unsafe-inline'",  # Swagger UI sets inline styles
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>shopctl API</title>
  <link rel="stylesheet" href="/api/v1/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/api/v1/docs/assets/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/v1/docs/assets/swagger-ui-bundle.js"></script>
  <script>{INIT_SCRIPT}</script>
</body>
</html>
"""


def assets_dir() -> Path:
    """Swagger UI's files inside the installed `swagger_ui` package, found without
    importing it (its own code, web framework glue, is not needed)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise ShopError("Swagger UI is not installed (pip install swagger-ui-py)", status=500)
    return Path(spec.submodule_search_locations[0]) / "static"


@api.get("/openapi.json")
async def openapi_json(request: Request):
    # The app registers its document builder (openapi imports this module's assets).
    return json_response(request.app.ctx.openapi_document())


@api.get("/docs")
async def docs_page(request: Request):
    return html(PAGE, headers={"Content-Security-Policy": CSP})


@api.get("/docs/assets/<name>")
async def docs_asset(request: Request, name: str):
    asset = validate(AssetPath, {"name": name}).name
    return await file(assets_dir() / asset, mime_type=ASSETS[asset], max_age=86400)
