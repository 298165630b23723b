"""The API docs page in a real Chromium with no way out to the internet: Redoc, served from the
drf-spectacular-sidecar package, draws the schema under the page's own Content-Security-Policy
(the `page` fixture fails the test on any violation)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


# Redoc's sidebar always asks its vendor's CDN for a logo; the policy blocks it on purpose (no
# request leaves the site) and Redoc then hides the image.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_the_api_docs_draw_the_schema_offline(page, daphne_url, csp_refusals):
    ours = urlsplit(daphne_url).netloc
    elsewhere: list[str] = []

    def only_ours(route):
        if urlsplit(route.request.url).netloc in (ours, ""):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_ours)
    page.goto("/api/docs/")

    expect(page.get_by_role("heading", name="Parity management API")).to_be_visible()
    expect(page.get_by_text("/api/v1/workspaces/").first).to_be_attached()
    assert elsewhere == []
    deadline = time.monotonic() + 5
    while not any(REDOC_LOGO in text for text in csp_refusals) and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # console events are delivered while Playwright waits
    assert [text for text in csp_refusals if REDOC_LOGO in text] != []
    csp_refusals[:] = [text for text in csp_refusals if REDOC_LOGO not in text]
    favicon = page.request.get("/favicon.ico")
    assert (favicon.status, favicon.headers["content-type"]) == (200, "image/x-icon")
