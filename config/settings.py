"""Parity's one settings module, read from the environment (see .env.example).

Two topologies come out of the same file: embedded (nothing set: SQLite, in-memory channel
layer and Celery broker, all in one process) and distributed (DATABASE_URL and REDIS_URL set).
PARITY_MODE=production adds the security posture and refuses development secrets.
"""

from __future__ import annotations

import base64
import binascii
import sys
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config import sample_data
from config.env import Env

env = Env()
BASE_DIR = Path(__file__).resolve().parent.parent

PARITY_MODE = env.choice("PARITY_MODE", ("development", "production"), "development")
PRODUCTION = PARITY_MODE == "production"
DATA_DIR = Path(env.str("PARITY_DATA_DIR", str(BASE_DIR / "var"))).resolve()
# Real historical data (demo workspace, tests, benchmarks): bundled in data/; the full collection
# in ../shared/data beside the clone (PARITY_SHARED_DATA) only adds to it. See config/sample_data.
BUNDLED_DATA_DIR = sample_data.BUNDLED_DATA_DIR
SHARED_DATA_DIR = sample_data.shared_data_dir(env)
# Parsed dataset files by content hash (runtimes/core/bar_cache.py): a run loads its bars in
# milliseconds instead of parsing text again. Bounded in size; 0 MB turns it off.
BAR_CACHE_DIR = Path(env.str("BAR_CACHE_DIR", str(DATA_DIR / "cache" / "bars"))).resolve()
BAR_CACHE_MAX_MB = env.int("BAR_CACHE_MAX_MB", 2048, minimum=0)
VERSION = "0.1.0"
GIT_SHA = env.str("GIT_SHA", "unknown")

# --- secrets -------------------------------------------------------------------------------
# Development defaults are public constants: production refuses every one of them.
DEV_SECRET_KEY = "parity-development-secret-key-do-not-use-in-production-0123456789"  # noqa: S105
DEV_API_KEY_PEPPER = "parity-development-api-key-pepper-not-secret"
DEV_CREDENTIALS_KEY = "cGFyaXR5LWRldmVsb3BtZW50LWtleS1ub3Qtc2VjISE="


def _require_production_secret(name: str, value: str, dev_value: str, min_length: int) -> None:
    if value == dev_value or not value or "change-me" in value:
        raise ImproperlyConfigured(
            f"{name} must be set to a secret of your own when PARITY_MODE=production "
            "(the development default is public)."
        )
    if len(value) < min_length:
        raise ImproperlyConfigured(
            f"{name} must be at least {min_length} characters long in production; "
            f"it has {len(value)}."
        )


def _fernet_keys(name: str, raw_keys: list[str]) -> list[str]:
    """Validate a MultiFernet key list without ever echoing a key."""
    if not raw_keys:
        raise ImproperlyConfigured(f"{name} must list at least one Fernet key.")
    for position, key in enumerate(raw_keys, start=1):
        try:
            decoded = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 32:
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a Fernet key (32 bytes, url-safe base64). "
                "Make one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            )
    return raw_keys


SECRET_KEY = env.str("SECRET_KEY", DEV_SECRET_KEY)
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS")
API_KEY_PEPPER = env.str("API_KEY_PEPPER", DEV_API_KEY_PEPPER)
CREDENTIALS_ENCRYPTION_KEYS = _fernet_keys(
    "CREDENTIALS_ENCRYPTION_KEYS", env.list("CREDENTIALS_ENCRYPTION_KEYS", [DEV_CREDENTIALS_KEY])
)
if PRODUCTION:
    _require_production_secret("SECRET_KEY", SECRET_KEY, DEV_SECRET_KEY, 50)
    _require_production_secret("API_KEY_PEPPER", API_KEY_PEPPER, DEV_API_KEY_PEPPER, 32)
    if DEV_CREDENTIALS_KEY in CREDENTIALS_ENCRYPTION_KEYS:
        raise ImproperlyConfigured(
            "CREDENTIALS_ENCRYPTION_KEYS must not contain the development key in production."
        )

DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG must be off when PARITY_MODE=production.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "[::1]"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the platform's host names in production.")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS")

# --- topology ------------------------------------------------------------------------------
DATABASE_URL = env.url("DATABASE_URL", ("postgres", "postgresql", "sqlite"))
REDIS_URL = env.url("REDIS_URL", ("redis", "rediss", "unix"))
if PRODUCTION and not (DATABASE_URL.startswith("postgres") and REDIS_URL):
    raise ImproperlyConfigured(
        "PARITY_MODE=production needs DATABASE_URL (PostgreSQL) and REDIS_URL."
    )
TOPOLOGY = "distributed" if REDIS_URL else "embedded"

if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "parity.sqlite3",
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            # Opening a connection (and its PRAGMAs) cost ~1 ms a request. Connections are per
            # thread; request threads are pooled (config/asgi.py) and Celery's Django fixup and
            # close_old_connections() drop unusable or obsolete ones, as with PostgreSQL.
            "CONN_MAX_AGE": 60,
            # Tests use a file too: an in-memory test database is shared-cache SQLite, whose table
            # locks fail at once ("database table is locked") where a file waits out `timeout`,
            # and the worker, reaper and request threads of the embedded topology write at once.
            "TEST": {"NAME": str(DATA_DIR / "test-parity.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "parity",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "parity"},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_EMBEDDED_WORKER = CELERY_BROKER_URL.startswith("memory://")
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", 6 * 3600, minimum=60)
# A broker message must not be redelivered while its task still runs (see the reliability notes).
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, float] = {
    "visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
if CELERY_EMBEDDED_WORKER:
    # kombu's in-memory broker is polled (every second): a queued session would wait for the
    # worker to see its dispatch task. This one wakes its consumers when a message is sent, as
    # Redis delivers at once; the interval only bounds a consumer's sleep between looks.
    CELERY_BROKER_TRANSPORT = "config.embedded_broker:Transport"
# Sessions the embedded worker (`make run`) hosts at once: each running session holds a worker
# thread until it ends, so this caps concurrent backtests (hosted and remote together); more
# wait queued. 8 lets a workspace's parameter sweep run 8 hosted backtests together (issue 14);
# a thread costs little, the sessions' own memory is what grows (bench/bench_hosted_many.py).
EMBEDDED_WORKER_CONCURRENCY = env.int("EMBEDDED_WORKER_CONCURRENCY", 8, minimum=1)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- session leases (runtimes/leases.py) -----------------------------------------------------
# A session's host renews its lease every RENEW seconds; a lease not renewed for LEASE seconds
# means its host is gone, and the reaper (every REAPER_INTERVAL seconds) fails a backtest, or puts
# a paper/live session back in the queue for another worker to take over
# (docs/session-lifecycle.md, "Takeover").
SESSION_LEASE_SECONDS = env.int("SESSION_LEASE_SECONDS", 15, minimum=2)
SESSION_LEASE_RENEW_SECONDS = env.int("SESSION_LEASE_RENEW_SECONDS", 3, minimum=1)
SESSION_REAPER_INTERVAL_SECONDS = env.int("SESSION_REAPER_INTERVAL_SECONDS", 5, minimum=1)
if SESSION_LEASE_RENEW_SECONDS * 2 > SESSION_LEASE_SECONDS:
    raise ImproperlyConfigured("SESSION_LEASE_RENEW_SECONDS must be at most half of "
                               "SESSION_LEASE_SECONDS (a lease must survive a missed renewal).")
# The reaper runs from beat in the distributed topology (CELERY_BEAT_SCHEDULE below); embedded,
# from a thread of its own (config/embedded.py), which never waits for a worker slot busy with a
# session.

# --- applications --------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Redoc's files for /api/docs/, served from our static files
    "channels",
    "django_celery_beat",
    "accounts",
    "strategies",
    "runtimes",
]
MIDDLEWARE = [
    # Outermost: under /api/ and /sessions/ every error below it leaves as the JSON envelope.
    "config.errors.ApiErrorEnvelopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # No WhiteNoise middleware: it is sync-only and would force every request through a
    # thread and back. config/asgi.py serves static files in front of Django instead.
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.security_headers.content_security_policy_middleware",
]
# The Trading API (`/sessions/...`, config/asgi.py) is key-authenticated and CSRF-exempt: it never
# reads a cookie, a session, a message or request.user, so its chain leaves those out.
TRADING_API_PREFIX = "/sessions/"
TRADING_API_URLCONF = "config.trading_urls"  # its routes alone: ~45 fewer patterns tried per call
TRADING_API_MIDDLEWARE = [
    # Outermost: under /api/ and /sessions/ every error below it leaves as the JSON envelope.
    "config.errors.ApiErrorEnvelopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.workspaces",
                "runtimes.broker_alerts.broker_alerts",
            ],
        },
    }
]

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "landing"
LOGIN_THROTTLE_ATTEMPTS = env.int("LOGIN_THROTTLE_ATTEMPTS", 5, minimum=1)
LOGIN_THROTTLE_WINDOW_SECONDS = env.int("LOGIN_THROTTLE_WINDOW_SECONDS", 300, minimum=1)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", str(DATA_DIR / "staticfiles")))
# Without collectstatic (development, tests) WhiteNoise serves straight from the app folders.
WHITENOISE_USE_FINDERS = not PRODUCTION


def _static_file_headers(headers: Any, path: str, url: str) -> None:
    headers["X-Content-Type-Options"] = "nosniff"  # as SecurityMiddleware does for pages


WHITENOISE_ADD_HEADERS_FUNCTION = _static_file_headers
if not PRODUCTION:  # SQLite and WhiteNoise expect these folders; production mounts its own.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "files")},
    },
    # Hashed, compressed names in production; the image collects them at build time.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", PRODUCTION)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 6 * 1024 * 1024

# --- limits on what a request may carry (config/server_limits.py) -----------------------
# Answered by the server before Django sees the request, with the JSON error envelope: 413 for
# a body above its limit (multipart uploads of strategies and datasets have the larger one),
# 414 for a request line or query string, 431 for headers (Twisted's own 16 KiB, 500 headers).
MAX_BODY_BYTES = env.int("MAX_BODY_BYTES", 1 << 20, minimum=1024)
MAX_UPLOAD_BYTES = env.int("MAX_UPLOAD_BYTES", 256 << 20, minimum=1 << 20)
MAX_QUERY_STRING_BYTES = env.int("MAX_QUERY_STRING_BYTES", 8192, minimum=256)

# --- email ---------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "Parity <noreply@localhost>")

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"api_key": env.str("API_KEY_RATE", "1200/min")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.JSONParser",  # DRF's, each with the platform's limits as envelopes
        "config.parsers.FormParser",
        "config.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parity management API",
    "DESCRIPTION": "Workspaces, members, API keys, strategies, datasets and sessions.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "REDOC_DIST": "SIDECAR",  # no CDN: the docs page works offline
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api_schema.add_common_error_responses",
    ],
}

# --- security ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=300)
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Every page (config/security_headers.py): scripts and styles only from our static files (htmx
# and lightweight-charts are vendored; templates hold no inline code, a test reads them all),
# requests (htmx, the live view's WebSocket: CSP 3's 'self' matches ws:/wss: to this host) only
# to this origin, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# /api/docs/ only: Redoc injects its styles at run time, inlines its icons as data: URLs and runs
# its search in a blob: worker.
API_DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", True)
    # Probes come over plain HTTP from inside the cluster, so they must not be redirected.
    SECURE_REDIRECT_EXEMPT = [r"^livez$", r"^readyz$", r"^health$", r"^instance$"]
    if env.bool("SECURE_PROXY_SSL_HEADER", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- logging -------------------------------------------------------------------------------
LOG_LEVEL = env.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "config.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": sys.stderr,
            "formatter": "plain",
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- hosted strategies (the sandbox) -------------------------------------------------------
# Where a worker reaches the web tier: the sandbox's relay forwards a hosted strategy's requests
# (its own session's paths only) to this plain-HTTP address. Unset: the address `manage.py serve`
# listens on (its embedded worker's own); a separate worker must set it. Each run first checks
# that it answers as this deployment (runtimes/instance.py).
PLATFORM_INTERNAL_URL = env.str("PLATFORM_INTERNAL_URL", "")
# Without bubblewrap, hosted runs are refused; development may allow them unsandboxed instead.
SANDBOX_ALLOW_UNSANDBOXED = env.bool("SANDBOX_ALLOW_UNSANDBOXED", False)
if PRODUCTION and SANDBOX_ALLOW_UNSANDBOXED:
    raise ImproperlyConfigured("SANDBOX_ALLOW_UNSANDBOXED must be off when PARITY_MODE=production.")
SANDBOX_MEMORY_MB = env.int("SANDBOX_MEMORY_MB", 1024, minimum=64)  # address space per run
SANDBOX_CPU_SECONDS = env.int("SANDBOX_CPU_SECONDS", 600, minimum=1)
SANDBOX_WALL_SECONDS = env.int("SANDBOX_WALL_SECONDS", 3600, minimum=5)
SANDBOX_MAX_OUTPUT_BYTES = env.int("SANDBOX_MAX_OUTPUT_BYTES", 1 << 20, minimum=1024)
# How a hosted backtest's strategy reaches its host: "channel", a unix socket served by the host's
# own thread (runtimes/sandbox/shim.py, runtimes/hosting/channel.py: engine speed), or
# "websocket", the relay to the web tier (as remote strategies and hosted paper sessions talk).
HOSTED_BACKTEST_TRANSPORT = env.choice("HOSTED_BACKTEST_TRANSPORT", ("channel", "websocket"),
                                       "channel")

# --- broker connections (runtimes/hosting/brokers.py, docs/broker-connections.md) ---------------
# Where each broker platform's APIs are, per platform id: Alpaca's production addresses unless
# overridden (the offline fake and a proxy set these; both Alpaca platforms follow them).
_ALPACA_DATA_URL = env.str("ALPACA_DATA_URL", "https://data.alpaca.markets")
_ALPACA_DATA_STREAM_URL = env.str("ALPACA_DATA_STREAM_URL", "wss://stream.data.alpaca.markets/v2")


def _alpaca_urls(trading: str, trading_stream: str) -> dict[str, str]:
    return {"trading": env.str("ALPACA_TRADING_URL", trading).rstrip("/"),
            "data": _ALPACA_DATA_URL.rstrip("/"),
            "trading_stream": env.str("ALPACA_TRADING_STREAM_URL", trading_stream),
            "data_stream": _ALPACA_DATA_STREAM_URL.rstrip("/")}




def _binance_urls(prefix: str, api: str, ws_api: str, stream: str) -> dict[str, str]:
    # One set of variables per platform (BINANCE_* live, BINANCE_TESTNET_* testnet): pointing
    # the live platform at a test address, or the testnet at production, takes a deliberate act.
    stream_url = env.str(f"{prefix}_STREAM_URL", stream)
    return {"api": env.str(f"{prefix}_API_URL", api).rstrip("/"),
            "ws_api": env.str(f"{prefix}_WS_API_URL", ws_api),
            "stream": stream_url if stream_url.endswith("/") else stream_url + "/"}


BROKER_URLS: dict[str, dict[str, str]] = {
    "alpaca-paper": _alpaca_urls("https://paper-api.alpaca.markets",
                                 "wss://paper-api.alpaca.markets/stream"),
    "alpaca-live": _alpaca_urls("https://api.alpaca.markets", "wss://api.alpaca.markets/stream"),
    "binance-testnet": _binance_urls("BINANCE_TESTNET", "https://testnet.binance.vision/api",
                                     "wss://ws-api.testnet.binance.vision/ws-api/v3",
                                     "wss://stream.testnet.binance.vision/"),
    "binance-live": _binance_urls("BINANCE", "https://api.binance.com/api",
                                  "wss://ws-api.binance.com:443/ws-api/v3",
                                  "wss://stream.binance.com:9443/"),
}
# Alpaca's request budget per account (and so per connection), shared by every session on it.
ALPACA_RATE_LIMIT_PER_MINUTE = env.int("ALPACA_RATE_LIMIT_PER_MINUTE", 200, minimum=1)
# Binance's order budget per account (new orders per 10 s), shared by every session on it.
BINANCE_ORDER_LIMIT_PER_10S = env.int("BINANCE_ORDER_LIMIT_PER_10S", 100, minimum=1)
# Binance's request weight per IP a minute, shared by every workspace behind that IP; each
# workspace may spend an equal split among the workspaces spending, never less than the floor.
BINANCE_WEIGHT_LIMIT_PER_MINUTE = env.int("BINANCE_WEIGHT_LIMIT_PER_MINUTE", 6000, minimum=1)
BINANCE_WEIGHT_FAIR_SHARE_FLOOR = env.int("BINANCE_WEIGHT_FAIR_SHARE_FLOOR", 300, minimum=1)
# Which outgoing address the budget above is counted for: every process with the same value
# shares one count. One NAT for all workers (the default): one value; workers calling Binance
# from different addresses: a value per address.
BINANCE_IP_SCOPE = env.str("BINANCE_IP_SCOPE", "shared")
# How long checking a connection's keys on save may wait for the broker (a request is waiting).
BROKER_VALIDATION_TIMEOUT_SECONDS = env.int("BROKER_VALIDATION_TIMEOUT_SECONDS", 5, minimum=1)

# --- fair share of workers (runtimes/quotas.py, runtimes/dispatch.py) ----------------------------
# Sessions of one kind a workspace may have live at once (created, queued or running); one more is
# refused with 429 QUOTA_EXCEEDED. A workspace's own value is set in the admin (Workspace quotas).
QUOTA_REMOTE_BACKTESTS = env.int("QUOTA_REMOTE_BACKTESTS", 10, minimum=0)
QUOTA_HOSTED_BACKTESTS = env.int("QUOTA_HOSTED_BACKTESTS", 20, minimum=0)
# How often remote sessions that no strategy contacted are checked against their connect timeout
# (and the queue is nudged, in case a worker lost a dispatch task).
SESSION_SWEEP_SECONDS = env.int("SESSION_SWEEP_SECONDS", 10, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "runtimes.sweep_sessions": {
        "task": "runtimes.sweep_sessions",
        "schedule": float(SESSION_SWEEP_SECONDS),
    },
}
# Parameter sweeps (runtimes/sweeps/): their points start as slots free; this pass catches the
# slots freed where no host could tell (a queued point cancelled, a lost host reaped).
CELERY_BEAT_SCHEDULE["runtimes.advance_sweeps"] = {
    "task": "runtimes.advance_sweeps",
    "schedule": float(SESSION_SWEEP_SECONDS),
}
if not CELERY_EMBEDDED_WORKER:
    CELERY_BEAT_SCHEDULE["runtimes.reap_lost_sessions"] = {
        "task": "runtimes.reap_lost_sessions",
        "schedule": float(SESSION_REAPER_INTERVAL_SECONDS),
    }
