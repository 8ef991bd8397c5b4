"""The `browser` and `page` fixtures: Debian's headless Chromium, driven by Playwright.

Without /usr/bin/chromium the browser tests skip on a developer's machine, and fail under
CI=true, where a missing browser is a broken image, not a reason to pass.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # we run as root
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip("/usr/bin/chromium is absent (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh context per test: no cookies or storage carried between tests."""
    context = browser.new_context()
    yield context.new_page()
    context.close()
