"""Size limits of a request, enforced by the server (daphne's Twisted HTTP/1.1 channel) before any
of it is buffered for Django, and answered with the JSON error envelope; WebSockets closed with
a close code rather than dropped.

Stock Twisted drops the connection without a word when the request line passes 16 KiB (a long
query string) and answers other bad requests with a bare 400; daphne buffers any body in full
(on disk past 100 kB) before the application sees its first byte. Here:
- request line over 16 KiB, or a query string over MAX_QUERY_STRING_BYTES: 414 URI_TOO_LONG;
  a query string of more fields than Django parses (DATA_UPLOAD_MAX_NUMBER_FIELDS, which made
  the request fail so badly that daphne answered its own HTML 500): 400 INVALID_REQUEST;
- headers over Twisted's 16 KiB or 500 lines: 431 HEADERS_TOO_LARGE;
- a body over MAX_BODY_BYTES (MAX_UPLOAD_BYTES for multipart uploads outside the Trading API,
  which takes none), by Content-Length before it is read, or as it arrives when chunked: 413
  PAYLOAD_TOO_LARGE;
- anything else Twisted cannot parse: 400 INVALID_REQUEST.
The answer is sent at once, then the rest of the request is read and dropped for a moment before
the connection closes, so that a client still sending gets the answer instead of a reset.
A WebSocket message over daphne's 1 MiB closes the socket with 1009 (message too big): autobahn
otherwise drops the TCP connection, which a client sees as a network error without a reason.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from daphne.http_protocol import HTTPFactory
from daphne.ws_protocol import WebSocketFactory
from django.conf import settings
from twisted.web import http

LINGER_S = 2.0  # after a refusal, how long the rest of the request is read and dropped
UPLOAD_TYPE = b"multipart/form-data"
INVALID_REQUEST = (HTTPStatus.BAD_REQUEST, "INVALID_REQUEST")
PAYLOAD_TOO_LARGE = (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "PAYLOAD_TOO_LARGE")
URI_TOO_LONG = (HTTPStatus.REQUEST_URI_TOO_LONG, "URI_TOO_LONG")
HEADERS_TOO_LARGE = (HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "HEADERS_TOO_LARGE")


class LimitedHTTPChannel(http.HTTPChannel):
    """Twisted's HTTP/1.1 channel with the platform's limits and JSON refusals."""

    _refused = False
    _body_left = 0  # bytes a chunked body may still bring

    def lineLengthExceeded(self, line: bytes) -> None:
        if self._receivedHeaderSize == 0:  # nothing of this request yet: its request line
            self._refuse(URI_TOO_LONG, "The request line is too long.", limit_bytes=self.MAX_LENGTH)
        else:
            self._refuse_headers()

    def lineReceived(self, line: bytes) -> None:
        if self._refused:
            return
        first = self._receivedHeaderSize == 0
        super().lineReceived(line)
        if first and not self._refused:
            self._check_query(getattr(self, "_path", b"").partition(b"?")[2])

    def _check_query(self, query: bytes) -> None:
        if len(query) > settings.MAX_QUERY_STRING_BYTES:
            self._refuse(
                URI_TOO_LONG,
                "The query string is too long.",
                limit_bytes=settings.MAX_QUERY_STRING_BYTES,
            )
        fields = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS  # past it, Django's QueryDict raises
        if fields is not None and query.count(b"&") >= fields:
            self._refuse(INVALID_REQUEST, "The query string has too many fields.", limit=fields)

    def allHeadersReceived(self) -> None:
        limit = self._body_limit()
        if self.length is not None and self.length > limit:
            self._refuse_body(limit)  # before reading it, and before any 100 Continue
            return
        self._body_left = limit
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self.length is None and not self._handlingRequest:  # a chunked body, as it arrives
            self._body_left -= len(data)
            if self._body_left < 0:
                self._refuse_body(self._body_limit())
                return
        super().rawDataReceived(data)

    def dataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().dataReceived(data)

    def _respondToBadRequestAndDisconnect(self) -> None:
        too_many = self._receivedHeaderCount > self.maxHeaders
        if too_many or self._receivedHeaderSize > self.totalHeadersSize:
            self._refuse_headers()
        else:
            self._refuse(INVALID_REQUEST, "The request is not valid HTTP/1.1.")

    def _body_limit(self) -> int:
        """The upload limit for multipart bodies, except on the Trading API, which takes none."""
        kinds = self.requests[-1].requestHeaders.getRawHeaders(b"content-type") or [b""]
        upload = kinds[0].lower().startswith(UPLOAD_TYPE)
        trading = getattr(self, "_path", b"").startswith(settings.TRADING_API_PREFIX.encode())
        return int(settings.MAX_UPLOAD_BYTES if upload and not trading else settings.MAX_BODY_BYTES)

    def _refuse_body(self, limit: int) -> None:
        self._refuse(PAYLOAD_TOO_LARGE, "The request body is too large.", limit_bytes=limit)

    def _refuse_headers(self) -> None:
        self._refuse(
            HEADERS_TOO_LARGE,
            "The request headers are too large.",
            limit_bytes=self.totalHeadersSize,
        )

    def _refuse(
        self, status_and_code: tuple[HTTPStatus, str], message: str, **details: int
    ) -> None:
        if self._refused:
            return
        self._refused = True
        self.transport.write(refusal(*status_and_code, message, details))
        self.transport.loseWriteConnection()  # the answer, then FIN; reading goes on
        self.setTimeout(LINGER_S)  # then close, whatever the client still sends


def refusal(status: HTTPStatus, code: str, message: str, details: dict[str, Any]) -> bytes:
    """A complete HTTP/1.1 response carrying the error envelope, closing the connection."""
    body = json.dumps({"code": code, "message": message, "details": details}).encode()
    head = (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class LimitedHTTPFactory(HTTPFactory):
    """daphne's factory, building plain `LimitedHTTPChannel`s: without Twisted's wrapper that
    can switch a TLS connection to HTTP/2, which daphne here never serves (no TLS, no h2)."""

    protocol = LimitedHTTPChannel


class ClosingWebSocketFactory(WebSocketFactory):
    """daphne's WebSocket factory, failing a connection with a close frame and its code."""

    def setProtocolOptions(self, **options: Any) -> None:
        super().setProtocolOptions(failByDrop=False, **options)


def install() -> None:
    """Make daphne's server (in this process) use the factories above: `daphne.server.Server`
    builds its factories from these module-level names when it runs."""
    import daphne.server

    daphne.server.HTTPFactory = LimitedHTTPFactory  # type: ignore[misc]
    daphne.server.WebSocketFactory = ClosingWebSocketFactory  # type: ignore[misc]
