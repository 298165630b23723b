"""Hostile input against a running session, over the real daphne server and session host: what
a client sends gets a clear 4xx in the error envelope, never a 5xx, a huge answer or a dead host.

Property tests (Hypothesis) throw arbitrary JSON and text at every Trading API route and every
kind of client WebSocket frame; the examples are bounded so the module runs in a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from runtimes.core.wire_parse import MODIFIABLE_DECIMALS, InvalidMessage, parse_client_message
from tests.runtimes.conftest import SYMBOL, ask_for_worker, wait_for_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

ENVELOPE = {"code", "message", "details"}
MAX_ANSWER_BYTES = 1 << 20  # far above any honest answer of a 300-bar session
ROUTES = [  # (method, path under {base}, with {id} and {symbol} drawn)
    ("POST", "v1/orders"),
    ("GET", "v1/orders"),
    ("DELETE", "v1/orders"),
    ("GET", "v1/orders/history"),
    ("GET", "v1/orders/{id}"),
    ("PATCH", "v1/orders/{id}"),
    ("DELETE", "v1/orders/{id}"),
    ("GET", "v1/positions"),
    ("DELETE", "v1/positions"),
    ("GET", "v1/positions/{id}"),
    ("PATCH", "v1/positions/{id}"),
    ("DELETE", "v1/positions/{id}"),
    ("GET", "v1/trades"),
    ("GET", "v1/quotes/{symbol}"),
    ("GET", "v1/bars/{symbol}"),
    ("GET", "v1/capabilities"),
    ("GET", "v1/status"),
    ("GET", "v1/circuit-breakers"),
    ("POST", "v1/circuit-breakers/reset"),
    ("GET", "v1/session"),
    ("GET", "v1/account"),
    ("GET", "health"),
    ("PUT", "v1/orders"),
    ("GET", "v1/nowhere"),
]
QUERY_NAMES = ["limit", "since", "until", "symbol", "status", "timeframe", "last_event_id"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
decimal_texts = st.one_of(
    st.sampled_from(["1", "0.5", "1e-999999999", "1e999999999", "NaN", "-Infinity", "0", "-1"]),
    st.from_regex(r"-?\d{0,22}(\.\d{0,22})?([eE][+-]?\d{1,12})?", fullmatch=True),
    st.decimals().map(str),
)
fields = {
    "symbol": st.just(SYMBOL) | st.text(max_size=24),
    "side": st.sampled_from(["buy", "sell"]) | json_values,
    "order_type": st.sampled_from(["market", "limit", "stop", "stop_limit", "trailing_stop"])
    | json_values,
    "time_in_force": st.sampled_from(["gtc", "day", "ioc", "fok"]) | json_values,
    "trailing_type": st.sampled_from(["absolute", "percent"]) | json_values,
    "client_order_id": st.text(max_size=70) | json_values,
    **{
        name: decimal_texts | json_values
        for name in (*MODIFIABLE_DECIMALS, "display_quantity", "leverage")
    },
}
order_like = st.fixed_dictionaries({}, optional=fields)
bodies = st.one_of(
    st.none(),
    order_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.just("[" * 5000 + "]" * 5000),
)
requests = st.tuples(
    st.sampled_from(ROUTES),
    st.text(max_size=24),  # an order or position id, or a symbol
    st.dictionaries(
        st.sampled_from(QUERY_NAMES) | st.text(max_size=8), st.text(max_size=30), max_size=3
    ),
    bodies,
    st.sampled_from(["application/json", "application/json", "text/plain"]),
)
frames = st.one_of(
    st.text(max_size=80),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["event_ack", "pong"]) | json_values},
        optional={
            "correlation_id": json_values,
            "events_processed": json_values
            | st.lists(st.from_regex(r"evt-9\d{3,6}", fullmatch=True)),
            "timestamp": json_values,
        },
    ).map(json.dumps),
    st.just("[" * 100_000 + "]" * 100_000),
)


def bounded(examples: int):
    """Hypothesis settings of the property tests here: a fixed number of reproducible examples,
    all against the one session of the test (hence the function-scoped fixtures)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture
def session(start_backtest) -> Iterator[object]:
    """A running backtest session (a socket attached, the first candle sent), cancelled after."""
    from django.utils import timezone

    from runtimes.services import cancel_session

    started = start_backtest(connect_timeout_s=120, idle_timeout_s=120)
    ask_for_worker(started)
    wait_for_state(started, {"waiting"})
    yield started
    cancel_session(session=started, now=timezone.now())
    wait_for_state(started, {"cancelled", "completed", "failed"})


@pytest.fixture
def http(daphne_url, session, trader_key) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {trader_key}"}
    with httpx.Client(
        base_url=f"{daphne_url}/sessions/{session.id}/", headers=headers, timeout=15
    ) as client:
        yield client


@pytest.fixture
def socket(daphne_url, session, trader_key) -> Iterator[ClientConnection]:
    url = f"{daphne_url.replace('http', 'ws', 1)}/sessions/{session.id}/v1/ws"
    with connect(
        url,
        additional_headers={"Authorization": f"Bearer {trader_key}"},
        open_timeout=5,
        max_size=None,
    ) as ws:
        assert next_frame(ws)["event_id"] == "evt-1"
        yield ws


def next_frame(ws: ClientConnection, kind: str | None = None) -> dict:
    """The next frame from the server (of `kind`, skipping others), within 5 s."""
    while True:
        frame = json.loads(ws.recv(timeout=5))
        if kind is None or frame["type"] == kind:
            return frame


def assert_clear_answer(answer: httpx.Response) -> None:
    """Below 500 (501 UNSUPPORTED_OPERATION is the protocol's "cannot do that"), bounded in
    size, and every error in the envelope."""
    assert len(answer.content) <= MAX_ANSWER_BYTES
    if answer.status_code < 400:
        return
    assert answer.headers["content-type"] == "application/json", answer.text[:300]
    body = answer.json()
    assert set(body) == ENVELOPE, body
    assert answer.status_code < 500 or (answer.status_code, body["code"]) == (
        501,
        "UNSUPPORTED_OPERATION",
    ), body


def assert_host_alive(http: httpx.Client, session) -> None:
    account = http.get("v1/account")
    assert (account.status_code, set(account.json()) >= {"balance", "equity"}) == (200, True)
    session.refresh_from_db()
    assert session.state == "running", session.failure_reason


def order(quantity: str) -> dict[str, str]:
    return {"symbol": SYMBOL, "side": "buy", "order_type": "market", "quantity": quantity}


def test_a_quantity_finer_than_the_precision_is_refused_and_no_answer_grows(http, socket, session):
    refused = http.post("v1/orders", json=order("1e-999999999"))
    assert (refused.status_code, refused.json()["details"]) == (
        400,
        {"field": "quantity", "provided": "1e-999999999"},
    )
    assert refused.json()["code"] == "INVALID_VALUE"
    listed = http.get("v1/orders")
    assert (listed.status_code, listed.json()) == (200, [])
    assert_host_alive(http, session)


def test_a_quantity_too_large_for_any_arithmetic_is_refused_and_the_host_goes_on(
    http, socket, session
):
    refused = http.post("v1/orders", json=order("1e999999999"))
    assert (refused.status_code, refused.json()["code"]) == (400, "INVALID_VALUE")
    assert refused.json()["message"] == (
        "quantity must have at most 18 digits before the decimal point"
    )
    accepted = http.post("v1/orders", json=order("0.001"))
    assert accepted.status_code == 201
    assert http.get(f"v1/orders/{accepted.json()['id']}").json()["quantity"] == "0.001"
    assert_host_alive(http, session)


@bounded(examples=250)
@given(request=requests)
def test_any_request_to_any_route_gets_a_clear_answer_and_the_host_lives(
    http, socket, session, request
):
    (method, template), path_value, query, body, content_type = request
    path = template.format(id=quote(path_value, safe=""), symbol=quote(path_value, safe=""))
    headers = {} if body is None else {"Content-Type": content_type}
    answer = http.request(
        method, path, params=query, headers=headers, content=None if body is None else body.encode()
    )
    assert_clear_answer(answer)
    assert_host_alive(http, session)


def test_after_a_storm_of_requests_the_host_still_answers(http, socket, session):
    # The property test above runs each example against the same session; this one checks the
    # aftermath of a short storm of its worst cases in one session.
    for quantity in ("1e-999999999", "1e999999999", "NaN", "9" * 200, "1" * 19):
        assert_clear_answer(http.post("v1/orders", json=order(quantity)))
    assert_clear_answer(
        http.post(
            "v1/orders",
            content=b"[" * 5000 + b"]" * 5000,
            headers={"Content-Type": "application/json"},
        )
    )
    assert_host_alive(http, session)


@bounded(examples=120)
@given(frame=frames)
def test_any_client_frame_is_taken_or_answered_with_an_error_frame(socket, frame):
    socket.send(frame)
    try:
        parse_client_message(frame)
    except InvalidMessage as refused:
        error = next_frame(socket, "error")
        assert (error["code"], error["message"]) == ("INVALID_MESSAGE", refused.message)


def test_after_any_frames_the_socket_and_the_host_still_work(http, socket, session):
    for frame in ("[" * 100_000 + "]" * 100_000, "x" * 300_000, "\x00", '{"type":"ping"}'):
        socket.send(frame)
        assert next_frame(socket, "error")["code"] == "INVALID_MESSAGE"
    socket.send(
        json.dumps(
            {
                "type": "event_ack",
                "correlation_id": "c",
                "events_processed": ["evt-1"],
                "timestamp": 0,
            }
        )
    )
    assert next_frame(socket, "candle")["event_id"].startswith("evt-")
    assert_host_alive(http, session)


def test_a_frame_above_daphnes_mebibyte_closes_the_socket_as_too_big(socket):
    socket.send("x" * ((1 << 20) + 1))
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            socket.recv(timeout=5)
    assert closed.value.rcvd is not None, repr(closed.value)
    assert closed.value.rcvd.code == 1009  # message too big; the SDK reconnects


@pytest.mark.parametrize("path", ["/sessions//v1/ws", "/sessions/not-a-uuid/v1/ws", "/nowhere"])
def test_a_websocket_to_a_path_no_socket_lives_at_is_refused_with_403(daphne_url, path):
    with pytest.raises(InvalidStatus) as refused:
        connect(daphne_url.replace("http", "ws", 1) + path, open_timeout=5).close()
    assert refused.value.response.status_code == 403
