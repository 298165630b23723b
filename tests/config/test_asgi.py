"""The ASGI entry point: static files answered before Django, request threads reused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asgiref.testing import ApplicationCommunicator

ROOT = Path(__file__).resolve().parents[2]


async def _get(path: str, headers: list[tuple[bytes, bytes]] | None = None):
    from config.asgi import application

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers or [],
             "query_string": b"", "root_path": "", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}
    communicator = ApplicationCommunicator(application, scope)
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(5)
    body = b""
    while True:
        message = await communicator.receive_output(5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], dict(start["headers"]), body


async def test_a_static_file_is_served_whole_with_its_type():
    status, headers, body = await _get("/static/css/app.css")
    assert (status, headers[b"content-type"]) == (200, b'text/css; charset="utf-8"')
    assert body == (ROOT / "static" / "css" / "app.css").read_bytes()


async def test_an_unchanged_static_file_is_not_sent_again():
    _, headers, _ = await _get("/static/css/app.css")
    status, _, body = await _get("/static/css/app.css", [(b"if-none-match", headers[b"etag"])])
    assert (status, body) == (304, b"")


@pytest.mark.django_db
async def test_an_unknown_static_path_falls_through_to_django():
    status, _, _ = await _get("/static/no-such-file.css")
    assert status == 404


def test_request_threads_are_reused_and_the_idle_ones_capped():
    from config.asgi import RequestThreads

    threads = RequestThreads(keep=1)
    first, second = threads.lease(), threads.lease()
    threads.release(first)
    threads.release(second)  # beyond `keep`: shut down, not kept
    assert threads.lease() is first
    assert threads.lease() is not second


@pytest.mark.django_db(transaction=True)
async def test_the_trading_api_runs_a_chain_without_sessions_csrf_and_messages():
    _, page, _ = await _get("/login/")
    status, api, body = await _get("/sessions/3f1c2b9e-0000-4000-8000-000000000009/v1/account")
    page, api = ({k.lower(): v for k, v in headers.items()} for headers in (page, api))

    assert b"Cookie" in page[b"vary"]  # the session middleware ran for the dashboard page
    assert (status, json.loads(body)["code"]) == (401, "UNAUTHORIZED")
    assert b"Cookie" not in api.get(b"vary", b"")  # it did not for the Trading API
    assert b"set-cookie" not in api
    assert (api[b"x-content-type-options"], api[b"x-frame-options"]) == (b"nosniff", b"DENY")


@pytest.mark.django_db(transaction=True)
async def test_the_trading_api_routes_by_its_own_urls_and_the_platform_still_by_all():
    from io import BytesIO

    from django.urls import Resolver404, resolve

    from config.asgi import TradingApiASGIHandler

    scope = {"type": "http", "method": "GET", "path": "/sessions/x/v1/account", "headers": [],
             "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80)}
    request, _ = TradingApiASGIHandler().create_request(scope, BytesIO())
    assert request.urlconf == "config.trading_urls"
    with pytest.raises(Resolver404):
        resolve("/livez", "config.trading_urls")  # its routes only
    status, _, body = await _get("/sessions/3f1c2b9e-0000-4000-8000-000000000009/v1/orders")
    assert (status, json.loads(body)["code"]) == (401, "UNAUTHORIZED")
    status, _, _ = await _get("/livez")  # on a request thread the Trading API used just now
    assert status == 200


@pytest.mark.django_db(transaction=True)
async def test_one_hop_still_sends_request_started_and_request_finished():
    from django.core import signals

    seen: list[str] = []

    def started(**kwargs):
        seen.append("started")

    def finished(**kwargs):
        seen.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        await _get("/livez")
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert seen == ["started", "finished"]


def test_daphne_runs_on_uvloop_and_the_rest_of_the_process_keeps_asyncio():
    import asyncio

    from config.asgi_server import uses_uvloop

    assert uses_uvloop()  # `config` was imported before Django loaded the daphne app
    assert type(asyncio.get_event_loop_policy()).__module__.startswith("asyncio")
