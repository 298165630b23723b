"""ASGI entry point: static files, then HTTP through Django, WebSockets through Channels' router.

Costs of Django's stock ASGI handler dominated a Trading API call, and the handler here removes
them:
- every request got a fresh thread for its sync work, and another thread to join it afterwards;
  here that per-request thread is leased from a pool. Sync work of one request still runs on
  one thread (thread-sensitive code keeps its connection), and a view waiting on the session
  bus blocks only its own thread, never the event loop or other requests;
- an async middleware chain of Django's MiddlewareMixin classes hops to that thread and back
  twice per middleware (process_request, process_response) before the sync view hops again;
- the request_started signal, the response's close (request_finished) and the view each made
  their own hop to that thread and back (each hop is two wake-ups of another thread).
Here one hop does it all: the signals, building the request, the whole middleware chain and the
view, and closing the response; every view of the platform is sync. A streaming response is
closed after it has been sent, as Django does.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # before the imports below, which load models

from asgiref.sync import ThreadSensitiveContext, sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core import signals  # noqa: E402
from django.core.exceptions import RequestAborted  # noqa: E402
from django.core.handlers.asgi import ASGIHandler, get_script_prefix  # noqa: E402
from django.http import HttpResponseBase  # noqa: E402
from django.urls import set_script_prefix  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from config.static_asgi import StaticFilesASGI  # noqa: E402
from runtimes.transport.fast_path import TradingApiFastPath  # noqa: E402

IDLE_THREADS_KEPT = 32  # beyond this many idle request threads, released ones are shut down


class RequestThreads:
    """Single-thread executors lent to one request at a time (created on demand, reused)."""

    def __init__(self, keep: int = IDLE_THREADS_KEPT) -> None:
        self._idle: list[ThreadPoolExecutor] = []
        self._lock = threading.Lock()
        self._keep = keep

    def lease(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def release(self, executor: ThreadPoolExecutor) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(executor)
                return
        executor.shutdown(wait=False)


class PooledThreadASGIHandler(ASGIHandler):
    """Django's handler with all of a request's sync work in one hop to a thread leased from
    `RequestThreads`."""

    threads = RequestThreads()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)  # the sync chain: `respond` runs it on a thread

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP only, not {scope['type']}.")
        executor = self.threads.lease()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.release(executor)

    async def handle(self, scope, receive, send):  # type: ignore[no-untyped-def]
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self.respond, thread_sensitive=True)(scope, body_file)
            await self.send_response(response, send)
            if response.streaming:
                await sync_to_async(response.close, thread_sensitive=True)()
        finally:
            body_file.close()

    def respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """Everything sync of one request, on its thread: what Django's handler spreads over
        three hops (request_started, the chain and the view, the close and request_finished)."""
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        response = error_response if request is None else self.get_response(request)
        if not response.streaming:  # fully rendered: close now (request_finished fires)
            response.close()
        return response


class TradingApiASGIHandler(PooledThreadASGIHandler):
    """The handler of `/sessions/...`: the same, with `settings.TRADING_API_MIDDLEWARE`, the chain
    without sessions, CSRF, user and messages (half a millisecond of an order submit), and
    `settings.TRADING_API_URLCONF`, the Trading API's routes alone."""

    def create_request(self, scope, body_file):  # type: ignore[no-untyped-def]
        request, error_response = super().create_request(scope, body_file)
        if request is not None:
            request.urlconf = settings.TRADING_API_URLCONF  # reset as the request finishes
        return request, error_response

    def load_middleware(self, is_async: bool = False) -> None:
        # BaseHandler reads settings.MIDDLEWARE and nothing else; this runs once, at start-up.
        everything = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.TRADING_API_MIDDLEWARE
        try:
            super().load_middleware(is_async=False)
        finally:
            settings.MIDDLEWARE = everything


class HttpRouter:
    """`/sessions/...` to the Trading API's handler (behind its fast path on the event loop,
    runtimes/transport/fast_path.py), everything else to the platform's."""

    def __init__(self) -> None:
        self.trading_api = TradingApiFastPath(TradingApiASGIHandler())
        self.platform = PooledThreadASGIHandler()

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        trading = scope.get("path", "").startswith(settings.TRADING_API_PREFIX)
        await (self.trading_api if trading else self.platform)(scope, receive, send)


def _http_application() -> StaticFilesASGI:
    return StaticFilesASGI(HttpRouter())


application = ProtocolTypeRouter(
    {
        "http": _http_application(),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
