"""The product speaks its users' language: what it replaces is "the Express API it
replaces" (or "existing clients of the v1 API"), never "the seed", a word from how the
project began that no user knows. `products seed` and `--seed` (seeding a catalog, a
random seed) are the other sense of the word and stay.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = [ROOT / "shopctl", ROOT / "migrations", ROOT / "README.md", ROOT / ".env.example"]
TEXT_SUFFIXES = {".py", ".md", ".html", ".txt", ".json", ".example", ".toml"}
THE_OLD_APP = re.compile(
    r"\bthe seed\b|\bseed's|\bseeds'|\bseed_webhook\b"
    r"|\bseed[- ](style|syntax|password|api|app|project|contract|envelope|welcome|path|address)",
    re.IGNORECASE,
)


def _files():
    for place in SHIPPED:
        if place.is_file():
            yield place
        else:
            yield from (p for p in place.rglob("*") if p.suffix in TEXT_SUFFIXES)


def test_no_shipped_text_calls_the_express_api_the_seed():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if THE_OLD_APP.search(line)
    ]
    assert found == [], "\n".join(found)


def test_the_served_documents_say_it_too(app_client):
    """The docs page and the OpenAPI document, as a client fetches them."""
    for path in ("/api/v1/openapi.json", "/api/v1/docs"):
        _, response = app_client.get(path)
        assert response.status_code == 200, path
        assert not THE_OLD_APP.search(response.text), path
