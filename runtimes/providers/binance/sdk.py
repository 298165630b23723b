"""python-binance pointed at a connection's URLs: small subclasses carrying them as class
attributes, the way the SDK reads them (reference §2.1: the WebSocket API URL is read only in
the constructor, the stream URL only from the class).

`rest_client_class` is the synchronous `Client` the provider's REST calls go through (requests;
the host calls the provider synchronously); `client_class` is the `AsyncClient` the streams use
(its `ws_api` carries the user data subscription); `socket_manager_class` the socket manager for
market streams and the user socket.
"""

from __future__ import annotations

from typing import Any

from binance import AsyncClient, BinanceSocketManager, Client

from runtimes.core.connection import BrokerConnection
from runtimes.providers.binance.connect import ed25519_pem


def client_class(connection: BrokerConnection) -> type[AsyncClient]:
    """An AsyncClient whose REST and WebSocket API go to `connection`'s URLs."""
    return type("ConnectionAsyncClient", (AsyncClient,), {
        "API_URL": connection.urls["api"],
        "WS_API_URL": connection.urls["ws_api"],
    })


def rest_client_class(connection: BrokerConnection) -> type[Client]:
    """A synchronous Client whose REST calls go to `connection`'s `api` URL (its WebSocket API
    URL is set too, so that nothing it builds points at Binance when the connection does
    not)."""
    return type("ConnectionClient", (Client,), {
        "API_URL": connection.urls["api"],
        "WS_API_URL": connection.urls["ws_api"],
    })


def socket_manager_class(connection: BrokerConnection) -> type[BinanceSocketManager]:
    """A BinanceSocketManager whose market streams go to `connection`'s `stream` URL."""
    return type("ConnectionSocketManager", (BinanceSocketManager,), {
        "STREAM_URL": connection.urls["stream"],
    })


def signing_arguments(connection: BrokerConnection) -> dict[str, Any]:
    """The python-binance constructor arguments that sign for `connection`: its HMAC secret, or
    its Ed25519 private key (key_type "ed25519", checked when the connection was saved)."""
    if str(connection.options.get("key_type", "hmac")) == "ed25519":
        return {"api_secret": None, "private_key": ed25519_pem(connection.secret)}
    return {"api_secret": connection.secret}
