"""`GET /api/v1/docs`: Swagger UI served by shopctl itself, rendering with no network."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def test_the_page_loads_nothing_from_outside(server):
    response = server.request("GET", "/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    references = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert references and all(ref.startswith("/api/v1/docs/assets/") for ref in references)
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "http" not in policy  # no other origin may be reached


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon-32x32.png", "image/png"),
    ],
)
def test_assets_come_from_the_installed_package(server, name, media_type):
    from shopctl.api.docs import assets_dir

    response = server.request("GET", f"/docs/assets/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content == (assets_dir() / name).read_bytes()
    assert "max-age=86400" in response.headers["cache-control"]


@pytest.mark.parametrize("name", ["index.html", "..%2F..%2Fdocs.py", "swagger-editor.js"])
def test_only_the_pages_own_assets_are_served(server, name):
    response = server.request("GET", f"/docs/assets/{name}")
    assert response.status_code in (400, 404)
    assert response.json()["success"] is False


@pytest.fixture
def offline_page(browser):
    """A page whose requests to anything but this machine are aborted and recorded."""
    context = browser.new_context()
    page = context.new_page()
    page.outside = []
    page.errors = []

    def only_local(route):
        if urlparse(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            page.outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


def test_swagger_ui_renders_every_operation_offline(server, offline_page):
    page = offline_page
    document = server.request("GET", "/openapi.json").json()
    operations = sum(len(item) for item in document["paths"].values())

    page.goto(server.api("/docs"))
    page.wait_for_selector(".opblock", timeout=30_000)

    assert page.locator(".opblock").count() == operations
    assert page.locator(".info .title").inner_text().startswith("shopctl API")
    login = page.locator("#operations-Auth-auth_login")
    login.locator(".opblock-summary").click()
    page.wait_for_selector("#operations-Auth-auth_login .body-param__example", timeout=10_000)
    assert "buyer@example.com" in login.locator(".body-param__example").inner_text()
    assert page.outside == []
    assert page.errors == []
