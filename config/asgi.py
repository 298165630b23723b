"""ASGI entry point: static files, then HTTP through Django, WebSockets through Channels' router.

Two costs of Django's stock ASGI handler dominated a Trading API call, and the handler here
removes both:
- every request got a fresh thread for its sync work, and another thread to join it afterwards;
  here that per-request thread is leased from a pool. Sync work of one request still runs on
  one thread (thread-sensitive code keeps its connection), and a view waiting on the session
  bus blocks only its own thread, never the event loop or other requests;
- an async middleware chain of Django's MiddlewareMixin classes hops to that thread and back
  twice per middleware (process_request, process_response) before the sync view hops again;
  here the whole chain and the view run in one hop, since every view of the platform is sync.
"""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup(set_prefix=False)  # before the imports below, which load models

from asgiref.sync import ThreadSensitiveContext, sync_to_async  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402

from config.routing import websocket_urlpatterns  # noqa: E402
from config.static_asgi import StaticFilesASGI  # noqa: E402

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
    """Django's handler with a sync middleware chain run on a thread leased from
    `RequestThreads`."""

    threads = RequestThreads()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        if is_async:  # one hop into the request's thread for the chain and the view together
            self._middleware_chain = sync_to_async(self._middleware_chain, thread_sensitive=True)

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            raise ValueError(f"Django serves HTTP only, not {scope['type']}.")
        executor = self.threads.lease()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            # A sync call cut off by a client disconnect may still be running: it merely
            # delays the next request leasing this thread, it cannot mix with it.
            self.threads.release(executor)


def _http_application() -> StaticFilesASGI:
    return StaticFilesASGI(PooledThreadASGIHandler())


application = ProtocolTypeRouter(
    {
        "http": _http_application(),
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
