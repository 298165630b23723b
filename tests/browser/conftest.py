"""Browser tests: Playwright (sync API) driving Debian's Chromium against the real daphne server
of tests/plugins/live_server.py. Skipped, saying how to install it, where Chromium is missing.

Screenshots of the main pages go to artifacts/screenshots/<test>-<page>.png (git ignores it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import FAST_HASHERS

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
MOBILE = {"width": 390, "height": 844}

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls (setting up
# rows, checking them) are plain synchronous code all the same.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    # Package scope: Playwright's event loop must be gone before the async tests elsewhere run.
    if not CHROMIUM.exists():
        pytest.skip("Chromium not found: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def csp_refusals() -> list[str]:
    """What the browser refused under the Content-Security-Policy; `page` fails the test unless
    it is empty at the end (a test may first remove what it expects)."""
    return []


@pytest.fixture
def page(browser, daphne_url, settings, csp_refusals):
    settings.PASSWORD_HASHERS = FAST_HASHERS  # the server thread shares these settings
    context = browser.new_context(base_url=daphne_url, viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=daphne_url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    # Whatever the test does, no page may break the Content-Security-Policy (config/settings.py).
    page.on("console", lambda message: csp_refusals.append(message.text)
            if "Content Security Policy" in message.text else None)
    yield page
    context.close()
    assert csp_refusals == []


@pytest.fixture
def screenshot(page, request) -> Callable[..., Path]:
    """screenshot(name, mobile=False): the whole page, at desktop (1280 px) or mobile (390 px)
    width, saved as artifacts/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, *, mobile: bool = False) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}{'-mobile' if mobile else ''}.png"
        if mobile:
            page.set_viewport_size(MOBILE)
            page.wait_for_timeout(300)  # charts follow their container's size
        page.screenshot(path=str(path), full_page=True)
        if mobile:
            page.set_viewport_size(DESKTOP)
            page.wait_for_timeout(300)
        return path

    return take


def log_in(page, email: str, password: str) -> None:
    """Sign in through the login form and wait for the dashboard it leads to."""
    page.goto("/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/app/$"))
