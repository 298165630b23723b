"""Liveness, readiness and health probes for orchestrators and people."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from config.errors import error_body
from runtimes.instance import CHALLENGE, prove


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return False, type(exc).__name__
    return True, "ok"


def _redis_ok() -> tuple[bool, str]:
    if not settings.REDIS_URL:
        return True, "not configured"
    import redis

    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1
        )
        client.ping()
    except Exception as exc:
        return False, type(exc).__name__
    return True, "ok"


def components() -> dict[str, dict[str, Any]]:
    database, database_detail = _database_ok()
    redis_up, redis_detail = _redis_ok()
    return {
        "database": {
            "ok": database,
            "detail": database_detail,
            "engine": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
        },
        "redis": {"ok": redis_up, "detail": redis_detail, "configured": bool(settings.REDIS_URL)},
    }


@require_GET
def livez(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    parts = components()
    ready = all(part["ok"] for part in parts.values())
    body = {"ready": ready, "components": {name: part["ok"] for name, part in parts.items()}}
    return JsonResponse(body, status=200 if ready else 503)


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    parts = components()
    ready = all(part["ok"] for part in parts.values())
    return JsonResponse(
        {
            "status": "ok" if ready else "degraded",
            "version": settings.VERSION,
            "git_sha": settings.GIT_SHA,
            "mode": settings.PARITY_MODE,
            "topology": settings.TOPOLOGY,
            "components": parts,
        }
    )


@require_GET
def instance(request: HttpRequest) -> JsonResponse:
    """Answers a worker's challenge as this deployment (runtimes/instance.py): it checks that
    PLATFORM_INTERNAL_URL reaches this platform before it hands a strategy a session token."""
    challenge = request.GET.get("challenge", "")
    if not CHALLENGE.fullmatch(challenge):
        message = "challenge must be 32 to 128 lowercase hex digits"
        return JsonResponse(error_body("INVALID_VALUE", message), status=400)
    return JsonResponse({"proof": prove(challenge)})
