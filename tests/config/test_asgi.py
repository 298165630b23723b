"""The ASGI entry point: static files answered before Django, request threads reused."""

from __future__ import annotations

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
