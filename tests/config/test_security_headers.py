"""Security headers of the web tier: a strict Content-Security-Policy on every page (its own, a
little looser, on the Redoc page), and pages and templates without any inline code it would
block."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from runtimes.models import State, TradingSession
from tests.config.test_asgi import _get as get_through_asgi
from tests.runtimes.conftest import btc_csv, dataset  # noqa: F401 (fixtures)
from tests.runtimes.results import run_in_process

pytestmark = pytest.mark.usefixtures("fast_password_hasher")

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
API_DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class InlineCode(HTMLParser):
    """Collects what a policy without 'unsafe-inline' blocks: inline scripts and styles, event
    handler attributes, style attributes and javascript: URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and "src" not in named and named.get("type") != "application/json":
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.found.append(f"{name}= on <{tag}>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL in {name}= on <{tag}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def test_pages_carry_the_strict_policy_and_the_other_security_headers(client: Client) -> None:
    response = client.get(reverse("login"))

    assert response["Content-Security-Policy"] == PAGE_POLICY
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


async def test_static_files_are_not_sniffed_either() -> None:
    status, headers, _ = await get_through_asgi("/static/js/app.js")

    assert (status, headers[b"x-content-type-options"]) == (200, b"nosniff")


def test_the_api_docs_page_has_its_own_policy_for_redoc(client: Client) -> None:
    response = client.get(reverse("api-docs"))

    assert response["Content-Security-Policy"] == API_DOCS_POLICY
    assert inline_code(response.content.decode()) == []


def test_the_inline_code_detector_finds_each_kind() -> None:
    page = (
        '<script>alert(1)</script><script type="application/json">{}</script>'
        '<style>p{}</style><a href=" JavaScript:go()" onclick="go()" style="color:red">x</a>'
    )

    assert inline_code(page) == [
        "<script> without src",
        "<style>",
        "javascript: URL in href= on <a>",
        "onclick= on <a>",
        "style= on <a>",
    ]


def test_dashboard_pages_have_no_inline_code(sign_in, owner, workspace, dataset):  # noqa: F811
    finished = run_in_process(workspace=workspace, by=owner, dataset=dataset)
    other = run_in_process(workspace=workspace, by=owner, dataset=dataset, every=5)
    running = TradingSession.objects.create(
        workspace=workspace,
        created_by=owner,
        dataset=dataset,
        symbols=["BTCUSDT"],
        timeframe="1m",
        state=State.RUNNING,
        batches=75,
    )
    client = sign_in(owner, workspace)
    urls = [
        reverse(name)
        for name in (
            "dashboard",
            "api_keys",
            "api_key_create",
            "workspace_members",
            "workspace_create",
            "password_change",
            "strategy_list",
            "strategy_upload",
            "dataset_list",
            "dataset_upload",
            "backtest_list",
            "backtest_rows",
            "schedule_list",
            "schedule_create",
            "examples",
        )
    ]
    urls += [
        reverse("dataset_detail", args=[dataset.pk]),
        reverse("backtest_detail", args=[finished.pk]),
        reverse("backtest_detail", args=[running.pk]),
        reverse("backtest_progress", args=[running.pk]),
        reverse("backtest_live", args=[running.pk]),
        f"{reverse('backtest_compare')}?ids={finished.pk}&ids={other.pk}",
    ]

    found = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        found[url] = inline_code(response.content.decode())

    assert found == {url: [] for url in urls}


def test_signed_out_pages_have_no_inline_code(client: Client, db) -> None:
    for name in ("landing", "login", "signup"):
        assert inline_code(client.get(reverse(name)).content.decode()) == [], name


# A template may hold what the pages above do not render (other states, partials): each one's
# source is read too. `json_script` renders a data block (type="application/json"), not code.
INLINE_IN_SOURCE = re.compile(
    r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.IGNORECASE
)


def test_no_template_holds_inline_code() -> None:
    templates = sorted(Path(settings.BASE_DIR, "templates").rglob("*.html"))

    found = {
        str(path.relative_to(settings.BASE_DIR)): INLINE_IN_SOURCE.findall(path.read_text())
        for path in templates
    }

    assert len(templates) > 40
    assert {path: hits for path, hits in found.items() if hits} == {}
