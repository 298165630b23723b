"""Root routes that serve files of the site itself: the API docs page and the favicon."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders
from django.test import Client

# Any absolute or protocol-relative URL in an attribute: what would make the page load from a CDN.
EXTERNAL_URL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)
REDOC = "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js"


def test_api_docs_load_redoc_from_this_site_and_no_external_host(client: Client) -> None:
    response = client.get("/api/docs/")
    text = response.content.decode()

    assert response.status_code == 200
    assert EXTERNAL_URL.findall(text) == []
    assert f'<script src="/static/{REDOC}">' in text
    assert finders.find(REDOC) is not None
    assert '<redoc spec-url="/api/schema/"></redoc>' in text


def test_favicon_ico_answers_an_icon(client: Client) -> None:
    response = client.get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # the ICO signature


def test_pages_link_the_svg_favicon(client: Client) -> None:
    text = client.get("/login/").content.decode()

    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in text
    assert finders.find("favicon.svg") is not None
