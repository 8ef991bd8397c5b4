"""The ceiling: a minimal Sanic app that answers with bytes captured from the real API.

Same framework, same number of workers, same routes and response bodies as the
measured endpoints, and nothing else: no database, no middleware, no validation.
What it serves per second under the same wrk settings is the most any handler could
serve on this machine; the harness reports every scenario as a fraction of it.

    python bench/ceiling_app.py --port 8100 --workers 2 --bodies DIR

DIR holds `product.json` (a real GET /api/v1/product/:id body) and `list.json`
(a real GET /api/v1/product?limit=20 body).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

BODIES_ENV = "BENCH_CEILING_BODIES"


def create_app():
    """Built in every worker (Sanic's AppLoader); the bodies are read once per worker."""
    from sanic import Sanic
    from sanic.response import raw

    bodies = Path(os.environ[BODIES_ENV])
    product = (bodies / "product.json").read_bytes()
    listing = (bodies / "list.json").read_bytes()
    app = Sanic("ceiling")

    @app.get("/api/v1/product/<product_id>")
    async def one_product(request, product_id: str):
        return raw(product, content_type="application/json")

    @app.get("/api/v1/product")
    async def product_list(request):
        return raw(listing, content_type="application/json")

    return app


def main() -> None:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bodies", type=Path, required=True)
    args = parser.parse_args()
    os.environ[BODIES_ENV] = str(args.bodies.resolve())
    loader = AppLoader(factory=create_app)
    app = loader.load()
    app.prepare(host=args.host, port=args.port, workers=args.workers, access_log=False, motd=False)
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
