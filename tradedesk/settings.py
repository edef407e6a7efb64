"""TradeDesk settings: everything comes from the environment, with safe embedded defaults.

Unset, the desk runs embedded: a SQLite file under var/, an in-memory channel layer,
the paper exchange, and Celery on a filesystem broker. DATABASE_URL and REDIS_URL switch
to PostgreSQL and Redis; TRADEDESK_ENV=production turns on the deployment hardening.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("TRADEDESK_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_decimal(name: str, default: str) -> Decimal:
    return Decimal(os.environ.get(name) or default)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


TRADEDESK_ENV = os.environ.get("TRADEDESK_ENV", "development")
PRODUCTION = TRADEDESK_ENV == "production"
DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when TRADEDESK_ENV=production")
    # Embedded default: generated once and kept, so sessions and encrypted secrets survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

# The demo's broker-secret key: a fixed, public value, so never used in production.
_DEV_FIELD_ENCRYPTION_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"tradedesk-development-broker-secrets").digest()
).decode()


def _field_encryption_keys() -> list[str]:
    """Fernet keys for broker secrets, independent of SECRET_KEY: the first encrypts, all
    decrypt (rotate by putting a new key first, then `manage.py reencrypt_secrets`)."""
    keys = env_list("FIELD_ENCRYPTION_KEY", "")
    if not keys:
        if PRODUCTION:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY must be set when TRADEDESK_ENV=production "
                "(a comma list of Fernet keys: python -c 'from cryptography.fernet import "
                "Fernet; print(Fernet.generate_key().decode())')"
            )
        return [_DEV_FIELD_ENCRYPTION_KEY]
    for key in keys:
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (ValueError, binascii.Error):
            valid = False
        if not valid:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEY holds a value that is not a Fernet key "
                "(32 bytes, url-safe base64)"
            )
    return keys


FIELD_ENCRYPTION_KEY = _field_encryption_keys()
# Secrets stored before FIELD_ENCRYPTION_KEY were encrypted with keys derived from SECRET_KEY
# (and SECRET_KEY_FALLBACKS) and these salts: they still decrypt, never encrypt. Turn it off
# once `manage.py reencrypt_secrets` has run (the 0004 migration runs it once).
FIELD_ENCRYPTION_LEGACY_SALTS = (
    env_list("FIELD_ENCRYPTION_SALT", "tradedesk-broker-secrets")
    if env_bool("FIELD_ENCRYPTION_LEGACY_FALLBACK", True)
    else []
)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = env_int("PORT", 8000)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "tradedesk.broker.sim",
    "accounts",
    "orders",
    "market",
    "portfolio",
    "gateway",
    "notifications",
    "ops",
]

# WhiteNoise last, not second as its docs suggest: it is the one sync-only middleware, and under
# ASGI (the embedded run serves HTTP through daphne) Django runs every middleware below a
# sync-only one in async mode, where each of Django's own hops to a thread and back for its
# request and response halves. Last, it leaves the whole chain in one thread. Measured on a DRF
# hello-world under daphne: ~210 → ~320 req/s. (WSGI is unaffected.) Static files now pass the
# other middleware first: cheap, as sessions, users and messages load only when used.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # The allowlist and the second-factor requirement for the pages (the API: AccessPolicy).
    "accounts.access.AccessMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "tradedesk.urls"
WSGI_APPLICATION = "tradedesk.wsgi.application"
ASGI_APPLICATION = "tradedesk.asgi.application"

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
                "notifications.context_processors.unread_notifications",
            ],
            "builtins": ["tradedesk.template_filters"],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL or f"sqlite:///{DATA_DIR / 'tradedesk.sqlite3'}",
        # Kept open between requests on SQLite too: opening one (and its PRAGMAs) cost more
        # than a whole DRF hello-world. Checked before reuse, so a dropped one is replaced.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks, write-ahead log.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests on a file too: in-memory SQLite locks whole tables without waiting, so tests of
    # concurrent requests would fail where the embedded run (a file, WAL, busy timeout) doesn't.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py caps a pool at 100 connections; hundreds of consumers need more.
                        "max_connections": 1000,
                        # Every consumer waits on BZPOPMIN for 5 s; redis-py 8's default 5 s read
                        # timeout raced it, killed idle consumers and dropped their sockets.
                        "socket_timeout": 15,
                    }
                ]
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "tradedesk.rediscache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "tradedesk",
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Counters that never leave the process (a stream connection's message rate), for
# tradedesk.ratelimit without a round trip.
CACHES["local"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "process-local",
    # A counter per connection and second: the default 300 entries would cull (and so reset)
    # live counters with a few hundred connections open.
    "OPTIONS": {"MAX_ENTRIES": 100_000},
}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Access (DESIGN.md "Access") ------------------------------------------------
# Who must log in with a second factor: none (only users who enrolled or an operator flagged),
# all, live (users with an active live broker account), orders (placing orders needs a
# session or token that passed one).
TWO_FACTOR_REQUIRED = os.environ.get("TWO_FACTOR_REQUIRED", "none").strip().lower()
if TWO_FACTOR_REQUIRED not in ("none", "all", "live", "orders"):
    raise ImproperlyConfigured("TWO_FACTOR_REQUIRED must be none, all, live or orders")
OTP_TOTP_ISSUER = "TradeDesk"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows an authenticator's key
# Proxies (CIDR list) whose X-Forwarded-For is believed; empty: the peer's address is the
# client's (tradedesk.client_ip: throttles, allowlists and logs all use it).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", "")
# Failed logins (password or code) allowed per username and per client address, shared by the
# login page and the token endpoint; over either, even the right password waits.
LOGIN_FAILURES_PER_USERNAME = os.environ.get("LOGIN_FAILURES_PER_USERNAME", "5/900s")
LOGIN_FAILURES_PER_ADDRESS = os.environ.get("LOGIN_FAILURES_PER_ADDRESS", "20/900s")
# New accounts per client address (each one is a funded paper account).
SIGNUP_RATE = os.environ.get("SIGNUP_RATE", "5/hour")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
MARKET_TIME_ZONE = "America/New_York"

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Front-end libraries come from npm (`npm ci`, run by make) and are served as static files.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/lightweight-charts", BASE_DIR / "node_modules" / "lightweight-charts" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.RevocableJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.access.AccessPolicy",
    ],
    # DRF's own get_ident trusts no X-Forwarded-For; the desk's throttles use TRUSTED_PROXIES
    # (tradedesk.client_ip.ClientAddressThrottle).
    "NUM_PROXIES": 0,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "tradedesk.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "token": os.environ.get("TOKEN_RATE_LIMIT", "20/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "tradedesk.api.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "COERCE_DECIMAL_TO_STRING": True,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TradeDesk API",
    "DESCRIPTION": "Orders, positions, market data and the broker stream of the TradeDesk.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Order and event sources share one choice set: one enum in the schema.
    "ENUM_NAME_OVERRIDES": {
        "OrderSourceEnum": "orders.models.SOURCES",
        "OrderSideEnum": "tradedesk.broker.types.ORDER_SIDES",
        "PositionSideEnum": ["long", "short"],
        "OrderStatusEnum": "orders.models.STATUSES",
        "SyncRunStatusEnum": "orders.models.SYNC_STATUSES",
        "NoticeKindEnum": "orders.events.NOTICE_KINDS",
    },
    # /api/docs/ serves Swagger UI from the installed sidecar package: it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -----------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
else:
    # A broker that needs no server: messages are files under var/celery.
    CELERY_BROKER_URL = "filesystem://"
    _celery_dir = DATA_DIR / "celery"
    for _sub in ("queue", "processed", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        # Without it kombu writes its exchange table to ./control in the working directory.
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Brokers ----------------------------------------------------------------
TRADEDESK_SIM_ALWAYS_OPEN = env_bool("TRADEDESK_SIM_ALWAYS_OPEN", True)
TRADEDESK_SIM_SEED = env_int("TRADEDESK_SIM_SEED", 20261125)
SIM_STARTING_CASH = env_decimal("SIM_STARTING_CASH", "100000")
# Reg T margin like an Alpaca paper account: buying power is 2x equity, shorting allowed.
SIM_MARGIN_MULTIPLIER = env_decimal("SIM_MARGIN_MULTIPLIER", "2")
# How far back lazy matching looks for prices that crossed a resting order (a session and more).
SIM_MATCH_LOOKBACK_MINUTES = env_int("SIM_MATCH_LOOKBACK_MINUTES", 480)
# A paper GTC order expires this many days after submission (Alpaca's 90).
SIM_GTC_DAYS = env_int("SIM_GTC_DAYS", 90)
# The paper exchange's market-data feed at fixed rates (a second, spread over the subscribed
# symbols) instead of its own pace of a quote and a trade per symbol a second: load for
# benchmarks and the stream's back-pressure test. 0: its own pace.
SIM_STREAM_QUOTES_PER_SECOND = env_float("SIM_STREAM_QUOTES_PER_SECOND", 0.0)
SIM_STREAM_TRADES_PER_SECOND = env_float("SIM_STREAM_TRADES_PER_SECOND", 0.0)
ALPACA_TRADING_URL = os.environ.get("ALPACA_TRADING_URL", "")  # "" → alpaca-py's paper/live URL
ALPACA_DATA_URL = os.environ.get("ALPACA_DATA_URL", "")
ALPACA_DATA_STREAM_URL = os.environ.get("ALPACA_DATA_STREAM_URL", "")
ALPACA_TRADING_STREAM_URL = os.environ.get("ALPACA_TRADING_STREAM_URL", "")
ALPACA_DATA_FEED = os.environ.get("ALPACA_DATA_FEED", "iex")
ALPACA_TIMEOUT_SECONDS = env_float("ALPACA_TIMEOUT_SECONDS", 10.0)
ALPACA_REQUESTS_PER_MINUTE = env_int("ALPACA_REQUESTS_PER_MINUTE", 190)
# The market-data stream: how long connect + auth may take before the feed is reported down,
# and the first reconnect delay (doubling, with jitter, to 30 s: a refused 406 waits its turn).
ALPACA_STREAM_AUTH_TIMEOUT_SECONDS = env_float("ALPACA_STREAM_AUTH_TIMEOUT_SECONDS", 10.0)
ALPACA_STREAM_RECONNECT_MIN_SECONDS = env_float("ALPACA_STREAM_RECONNECT_MIN_SECONDS", 1.0)
# Market data for the stream hub and the quote endpoints: "sim" or an Alpaca key pair.
MARKET_DATA_PROVIDER = os.environ.get("MARKET_DATA_PROVIDER", "sim")
ALPACA_MARKET_DATA_KEY_ID = os.environ.get("ALPACA_MARKET_DATA_KEY_ID", "")
ALPACA_MARKET_DATA_SECRET = os.environ.get("ALPACA_MARKET_DATA_SECRET", "")

# --- Order validation and risk thresholds (DESIGN.md "Order validation") -------
MAX_ORDER_QUANTITY = env_decimal("MAX_ORDER_QUANTITY", "100000")
MAX_POSITION_SIZE = env_decimal("MAX_POSITION_SIZE", "1000000")  # dollars per symbol
MAX_DAILY_TRADES = env_int("MAX_DAILY_TRADES", 200)
BUYING_POWER_WARNING_PCT = env_decimal("BUYING_POWER_WARNING_PCT", "80")
PRICE_WARNING_PCT = env_decimal("PRICE_WARNING_PCT", "5")
PDT_RULE = env_bool("PDT_RULE", False)
VALIDATION_CACHE_SECONDS = env_int("VALIDATION_CACHE_SECONDS", 5)
# An order the broker has not confirmed after this long is looked up by client_order_id and,
# when the broker has no such order, ends rejected with a `lost` event.
ORDER_PENDING_TIMEOUT = env_int("ORDER_PENDING_TIMEOUT", 60)
# Four eyes (DESIGN.md "Operator workflow"): an order whose notional (dollars) is above this
# waits as pending_approval until another operator approves it. Unset: no order needs approval.
# A user or broker account may set its own (admin); the broker account's wins, then the user's.
APPROVAL_NOTIONAL = (
    env_decimal("APPROVAL_NOTIONAL", "0") if os.environ.get("APPROVAL_NOTIONAL") else None
)
# Seconds an order waits for approval before it ends `expired`.
APPROVAL_TIMEOUT = env_int("APPROVAL_TIMEOUT", 900)
# Per-user limits on order commands, one counter per command for every door (API, pages,
# admin, gateway, tasks): "N/period" (s, min, hour, day, or e.g. 10s); empty means no limit.
ORDER_COMMAND_RATES = {
    "place": os.environ.get("ORDER_RATE_LIMIT", "120/min"),
    "replace": os.environ.get("ORDER_REPLACE_RATE_LIMIT", "120/min"),
    "cancel": os.environ.get("ORDER_CANCEL_RATE_LIMIT", "240/min"),
    "validate": os.environ.get("ORDER_VALIDATE_RATE_LIMIT", "240/min"),
    "sync": os.environ.get("ORDER_SYNC_RATE_LIMIT", "10/min"),
    # Counted to the operator who approves (the trader's place was counted when placing).
    "approve": os.environ.get("ORDER_APPROVE_RATE_LIMIT", "120/min"),
}
# Requests per gateway API key (Alpaca allows 200/min per account); a key may set its own.
GATEWAY_KEY_RATE_LIMIT = os.environ.get("GATEWAY_KEY_RATE_LIMIT", "200/min")

# --- Sync and snapshots -----------------------------------------------------
ORDER_SYNC_INTERVAL = env_int("ORDER_SYNC_INTERVAL", 60)
POSITION_SNAPSHOT_INTERVAL = env_int("POSITION_SNAPSHOT_INTERVAL", 300)
# Orders per sync transaction (whole pages of up to 500): fewer commits, fewer round trips.
ORDER_SYNC_BATCH_SIZE = env_int("ORDER_SYNC_BATCH_SIZE", 1000)

# --- Notifications (DESIGN.md "Operator workflow") ---------------------------
# Django's e-mail backend: the console (the embedded run prints mails) unless set, e.g.
# django.core.mail.backends.smtp.EmailBackend with EMAIL_HOST/EMAIL_PORT/EMAIL_HOST_USER/
# EMAIL_HOST_PASSWORD/EMAIL_USE_TLS.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "TradeDesk <tradedesk@localhost>")
# The desk's address as its users reach it: links in e-mails.
DESK_URL = os.environ.get("DESK_URL", f"http://{HOST}:{PORT}").rstrip("/")
# Attempts per webhook delivery (the n-th retry waits about 2**n seconds) and each one's timeout.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 5.0)
# Webhook URLs resolving to loopback, private, link-local or reserved addresses are refused
# (the desk must not be a way into its own network) unless this is on.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)

# --- Portfolio analytics ----------------------------------------------------
# How closing executions pick the lots they close: fifo | lifo | highest_cost.
LOT_METHOD = os.environ.get("LOT_METHOD", "fifo").strip().lower()
if LOT_METHOD not in ("fifo", "lifo", "highest_cost"):
    raise ImproperlyConfigured("LOT_METHOD must be fifo, lifo or highest_cost")
# Account snapshots older than these many days are rolled up: to the last of each hour, then
# to the last of each day (session closes are always kept).
SNAPSHOT_HOURLY_AFTER_DAYS = env_int("SNAPSHOT_HOURLY_AFTER_DAYS", 7)
SNAPSHOT_DAILY_AFTER_DAYS = env_int("SNAPSHOT_DAILY_AFTER_DAYS", 90)

# --- Stream -----------------------------------------------------------------
# A quote waits up to one window, so the window sets the staleness p99 (measured at 1,000
# quotes/s: 100 ms gives p99 102 ms, 80 ms 87-97 ms, 40 ms 57 ms for 20% of a core instead of 13%;
# README "The live stream"). Under load the relay stretches it (graceful overload).
STREAM_FLUSH_MS = env_int("STREAM_FLUSH_MS", 40)
STREAM_MAX_SYMBOLS = env_int("STREAM_MAX_SYMBOLS", 50)
STREAM_QUEUE_LIMIT = env_int("STREAM_QUEUE_LIMIT", 1000)
STREAM_SLOW_CLOSE_S = env_int("STREAM_SLOW_CLOSE_S", 10)
# The token pages fetch for the stream opens it (once) within this many seconds, and nothing else.
STREAM_TOKEN_SECONDS = env_int("STREAM_TOKEN_SECONDS", 60)
# Open connections per user across every process (Redis when REDIS_URL is set); over it the
# new one is closed with 1008. 0: no cap.
STREAM_MAX_CONNECTIONS_PER_USER = env_int("STREAM_MAX_CONNECTIONS_PER_USER", 10)
# Messages a connection may send (client messages and WebSocket pings); over it: an `error`
# frame, then 1008. 0: no limit.
STREAM_CLIENT_MESSAGES_PER_SECOND = env_int("STREAM_CLIENT_MESSAGES_PER_SECOND", 20)

# --- Metrics ----------------------------------------------------------------
# /metrics (DESIGN.md "Operator workflow"): with a token, scrapers send it as
# `Authorization: Bearer <token>`; unset, only loopback clients are served.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# --- Demo users for the embedded run ----------------------------------------
DEMO_TRADER_USERNAME = os.environ.get("DEMO_TRADER_USERNAME", "trader")
DEMO_TRADER_PASSWORD = os.environ.get("DEMO_TRADER_PASSWORD", "trader-demo-1")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

if PRODUCTION:
    DEBUG = False
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when TRADEDESK_ENV=production")
