"""Limits on what one request may carry, over the real daphne server (tests/plugins/live_server.py):
every refusal is the JSON error envelope with 400/413/414/431, on the Trading API and on the
management API, with DEBUG on or off, and never a dropped connection."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

NESTED = ("[" * 100_000 + "]" * 100_000).encode()


@pytest.fixture(params=[True, False], ids=["debug", "no-debug"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def key(owner, workspace, make_api_key) -> str:
    return make_api_key(owner, workspace, scopes=("read", "trade:paper"))[1]


@pytest.fixture
def api_paths(workspace) -> dict[str, str]:
    """A POST endpoint of each API: a session's order submit and the workspace's sessions."""
    from runtimes.models import TradingSession

    session = TradingSession.objects.create(
        workspace=workspace, symbols=["BTCUSDT"], timeframe="1m"
    )
    return {
        "trading": f"/sessions/{session.id}/v1/orders",
        "management": f"/api/v1/workspaces/{workspace.id}/sessions",
    }


def exchange(base_url: str, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send one raw HTTP/1.1 request, read the answer to the end of the connection."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=20) as connection:
        connection.sendall(head.encode("latin-1") + b"\r\n" + body)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    if not received:
        raise AssertionError("the server closed the connection without an answer")
    status_line, _, rest = received.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    headers = dict(line.decode().split(": ", 1) for line in header_block.split(b"\r\n"))
    return int(status_line.split()[1]), {k.lower(): v for k, v in headers.items()}, payload


def request_head(method: str, target: str, *lines: str, length: int | None = None) -> str:
    fields = ["Host: testserver", "Connection: close", *lines]
    if length is not None:
        fields.append(f"Content-Length: {length}")
    return f"{method} {target} HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in fields)


def json_post(path: str, key: str, length: int) -> str:
    return request_head(
        "POST",
        path,
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        length=length,
    )


def envelope(answer: tuple[int, dict[str, str], bytes]) -> tuple[int, str, dict]:
    status, headers, body = answer
    assert headers["content-type"] == "application/json", body[:200]
    document = json.loads(body)
    assert set(document) == {"code", "message", "details"}
    return status, document["code"], document["details"]


@pytest.mark.parametrize("api", ["trading", "management"])
def test_a_deeply_nested_json_body_is_a_400_envelope(daphne_url, debug, key, api_paths, api):
    answer = exchange(daphne_url, json_post(api_paths[api], key, len(NESTED)), NESTED)
    assert envelope(answer) == (400, "INVALID_REQUEST", {})
    assert json.loads(answer[2])["message"] == "JSON parse error - nested deeper than 32 levels"


@pytest.mark.parametrize("api", ["trading", "management"])
def test_a_body_over_a_mebibyte_is_a_413_envelope(daphne_url, debug, key, api_paths, api):
    body = b"x" * (20 << 20)
    answer = exchange(daphne_url, json_post(api_paths[api], key, len(body)), body)
    assert envelope(answer) == (413, "PAYLOAD_TOO_LARGE", {"limit_bytes": 1 << 20})


def test_a_chunked_body_is_refused_once_it_passes_the_limit(daphne_url, key, api_paths):
    chunk = b"x" * 65536
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 20 + b"0\r\n\r\n"
    head = request_head(
        "POST",
        api_paths["trading"],
        f"Authorization: Bearer {key}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    )
    assert envelope(exchange(daphne_url, head, body)) == (
        413,
        "PAYLOAD_TOO_LARGE",
        {"limit_bytes": 1 << 20},
    )


def test_a_multipart_upload_keeps_its_own_larger_limit(daphne_url, key, workspace):
    boundary = "limits-test"
    upload = b"timestamp,open,high,low,close,volume\n" + b"x" * (3 << 20)
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbig\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file_AAPL"; '
        f'filename="AAPL.csv"\r\nContent-Type: text/csv\r\n\r\n'
    ).encode()
    body += upload + f"\r\n--{boundary}--\r\n".encode()
    head = request_head(
        "POST",
        f"/api/v1/workspaces/{workspace.id}/datasets/",
        f"Authorization: Bearer {key}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
        length=len(body),
    )
    status, code, details = envelope(exchange(daphne_url, head, body))
    assert (status, code) == (400, "VALIDATION_ERROR")  # read and checked, not refused unread
    assert details["problems"][0]["file"] == "AAPL.csv"


def test_the_trading_api_takes_no_upload_so_multipart_has_the_small_limit(daphne_url, api_paths):
    kind, body = multipart({"quantity": b"1" * (2 << 20)})
    head = request_head("POST", api_paths["trading"], f"Content-Type: {kind}", length=len(body))
    assert envelope(exchange(daphne_url, head, body)) == (
        413,
        "PAYLOAD_TOO_LARGE",
        {"limit_bytes": 1 << 20},
    )


@pytest.mark.parametrize("size", [10_000, 25_000])
@pytest.mark.parametrize(
    "path", ["/sessions/3f1c2b9e-0000-4000-8000-000000000009/v1/orders", "/api/v1/workspaces/"]
)
def test_a_query_string_over_8_kib_is_a_414_envelope(daphne_url, debug, path, size):
    head = request_head("GET", f"{path}?q={'a' * size}")
    limit = 8192 if size < 16384 else 16384  # the query string's own, or the request line's
    assert envelope(exchange(daphne_url, head)) == (414, "URI_TOO_LONG", {"limit_bytes": limit})


@pytest.mark.parametrize(
    "headers",
    [
        [f"X-Big: {'a' * 20_000}"],  # one line longer than Twisted reads
        [f"X-Many-{n}: {'a' * 100}" for n in range(200)],  # 20 kB in all
        [f"X-{n}: 1" for n in range(501)],  # more lines than Twisted takes
    ],
    ids=["one-long-header", "many-headers", "too-many-headers"],
)
def test_headers_over_16_kib_are_a_431_envelope(daphne_url, headers):
    head = request_head("GET", "/api/v1/workspaces/", *headers)
    assert envelope(exchange(daphne_url, head)) == (
        431,
        "HEADERS_TOO_LARGE",
        {"limit_bytes": 16384},
    )


def test_a_request_twisted_cannot_parse_is_a_400_envelope(daphne_url):
    head = request_head("POST", "/api/v1/workspaces/", "Content-Length: ten")
    assert envelope(exchange(daphne_url, head)) == (400, "INVALID_REQUEST", {})


def test_a_request_within_the_limits_is_served(daphne_url):
    status, headers, body = exchange(daphne_url, request_head("GET", "/livez?probe=1"))
    assert (status, headers["content-type"], json.loads(body)) == (
        200,
        "application/json",
        {"status": "ok"},
    )


def test_a_refused_client_that_keeps_sending_is_disconnected_after_a_moment(daphne_url):
    address = urlsplit(daphne_url)
    head = request_head("POST", "/api/v1/workspaces/", length=1 << 30)  # a gigabyte, it says
    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(head.encode() + b"\r\n")
        answer = b""
        while chunk := connection.recv(65536):  # the answer comes at once, then the server's FIN
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")
        deadline = time.monotonic() + 10
        with pytest.raises(OSError):  # reset once the server stops reading what it drops
            while time.monotonic() < deadline:
                connection.sendall(b"x" * 65536)
                time.sleep(0.05)


def multipart(fields: dict[str, bytes], boundary: str = "limits-test") -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart form of plain fields."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value
        + b"\r\n"
        for name, value in fields.items()
    ]
    return f"multipart/form-data; boundary={boundary}", b"".join(
        parts
    ) + f"--{boundary}--\r\n".encode()


def test_djangos_own_upload_limits_are_envelopes_too(daphne_url, debug, key, workspace):
    url = f"/api/v1/workspaces/{workspace.id}/datasets/"
    kind, body = multipart({"name": b"x" * (7 << 20)})  # a 7 MB field that is not a file
    head = request_head(
        "POST", url, f"Authorization: Bearer {key}", f"Content-Type: {kind}", length=len(body)
    )
    assert envelope(exchange(daphne_url, head, body)) == (
        413,
        "PAYLOAD_TOO_LARGE",
        {"limit_bytes": 6 << 20},
    )
    kind, body = multipart({f"f{n}": b"1" for n in range(1001)})
    head = request_head(
        "POST", url, f"Authorization: Bearer {key}", f"Content-Type: {kind}", length=len(body)
    )
    assert envelope(exchange(daphne_url, head, body)) == (400, "INVALID_REQUEST", {"limit": 1000})


@pytest.mark.parametrize("api", ["trading", "management"])
def test_a_query_string_of_too_many_fields_is_a_400_envelope(
    daphne_url, debug, key, api_paths, api
):
    head = request_head(
        "GET", api_paths[api] + "?" + "&".join(["a=1"] * 1500), f"Authorization: Bearer {key}"
    )
    assert envelope(exchange(daphne_url, head)) == (400, "INVALID_REQUEST", {"limit": 1000})
