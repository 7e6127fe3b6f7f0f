"""DPP settings: one module, every value from the environment.

With nothing set this is the embedded default (docs/design.md §6): SQLite, a filesystem
Celery broker and local result files under ``var/``, and a local-memory cache. Each
backend is switched by its own variable. ``DJANGO_ENV=production`` requires the real
backends and real secrets and refuses to start otherwise.
"""

from pathlib import Path

import environ
from botocore.config import Config as BotoConfig
from django.core.exceptions import ImproperlyConfigured
from kombu.utils.url import url_to_parts

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
VAR_DIR = Path(env.str("DPP_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"

DEV_SECRET_KEY = "dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105  # pragma: allowlist secret
DEV_API_KEY_PEPPER = "dev-insecure-pepper-do-not-use-in-production"  # pragma: allowlist secret

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
DPP_API_KEY_PEPPER = env.str("DPP_API_KEY_PEPPER", default=DEV_API_KEY_PEPPER)
DEBUG = env.bool("DJANGO_DEBUG", default=not PRODUCTION)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"] if not PRODUCTION else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "dpp.handlers.csrf_failure"

INSTALLED_APPS = [
    # django.contrib.admin with DPP's site (config/admin.py).
    "config.apps.DppAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "storages",
    "dpp",
    "billing",
    "runs",
    "reaper",
]

MIDDLEWARE = [
    # First, ahead of the OpenTelemetry middleware that dpp.tracing inserts at index 1.
    "dpp.middleware.UnroutablePathMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "dpp.middleware.RequestContextMiddleware",
    "dpp.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dpp.middleware.ProblemMiddleware",
    "dpp.ratelimit.middleware.RateLimitMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The admin site's own templates (the paused banner, the audit count).
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
SQLITE_PATH = VAR_DIR / "db.sqlite3"
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DPP_DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE takes the write
                # lock at BEGIN so two writers queue instead of failing on upgrade.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (and rate limit counters) ---------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("DPP_CACHE_PREFIX", default="dpp"),
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery (docs/design.md §2 relies on late acks, reject-on-lost and prefetch 1) -----
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
DPP_LEASE_TTL_SEC = env.int("DPP_LEASE_TTL_SEC", default=120)
DPP_SQS_RUNS_QUEUE_URL = env.str("DPP_SQS_RUNS_QUEUE_URL", default="")
DPP_SQS_REAPER_QUEUE_URL = env.str("DPP_SQS_REAPER_QUEUE_URL", default="")
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Every folder is named: kombu's defaults (control/ for the exchange tables, data_in/,
    # processed/) are relative to the working directory and would put broker state in it.
    for _sub in ("queue", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(BROKER_DIR / "control"),
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
    }
else:
    _SQS_WAIT_TIME_SEC = 5
    _broker_host = url_to_parts(CELERY_BROKER_URL).hostname
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than the lease, so the broker never redelivers a run that is still leased.
        # kombu applies it only to queues it creates: predefined queues keep their own
        # VisibilityTimeout attribute, which the /readyz broker check compares to the lease.
        "visibility_timeout": DPP_LEASE_TTL_SEC * 3,
        # The pause before polling again after an empty poll, and also while every pool
        # process is busy (prefetch full): 1 s (kombu's default) would idle a worker that
        # just freed a process; 0 would spin the consumer loop on a full pool.
        "polling_interval": 0.1,
        "wait_time_seconds": _SQS_WAIT_TIME_SEC,
        "region": env.str("AWS_DEFAULT_REGION", default="us-east-1"),
        # kombu speaks plain http to a host named in the URL unless told otherwise: https
        # for AWS (no host, or *.amazonaws.com), http for a local emulator.
        "is_secure": env.bool(
            "DPP_SQS_IS_SECURE",
            default=_broker_host is None or _broker_host.endswith(".amazonaws.com"),
        ),
        # Bounded calls, so a sick SQS fails a publish or a readiness probe in seconds; the
        # read timeout must outlast a long poll.
        "client-config": {
            "connect_timeout": 2,
            "read_timeout": _SQS_WAIT_TIME_SEC + 10,
            "retries": {"mode": "standard", "max_attempts": 2},
        },
        "predefined_queues": {
            name: {"url": url}
            for name, url in (
                ("runs", DPP_SQS_RUNS_QUEUE_URL),
                ("reaper", DPP_SQS_REAPER_QUEUE_URL),
            )
            if url
        },
    }
    if not CELERY_BROKER_TRANSPORT_OPTIONS["predefined_queues"]:
        del CELERY_BROKER_TRANSPORT_OPTIONS["predefined_queues"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "runs"
CELERY_TASK_ROUTES = {"runs.*": {"queue": "runs"}, "reaper.*": {"queue": "reaper"}}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Result storage --------------------------------------------------------------------
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
RESULTS_DIR = VAR_DIR / "results"
if AWS_STORAGE_BUCKET_NAME:
    RESULTS_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None)
            or env.str("AWS_DEFAULT_REGION", default=None),
            "querystring_expire": 600,
            "file_overwrite": True,
            "default_acl": None,
            "client_config": BotoConfig(
                # SigV4: AWS refuses the legacy SigV2 presigned URLs boto3 still makes by
                # default in us-east-1. (Set here: with a client_config, django-storages
                # ignores its own signature_version option.)
                signature_version="s3v4",
                # Bounded calls: a receipt write or a readiness probe fails in seconds.
                connect_timeout=3,
                read_timeout=20,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        },
    }
else:
    RESULTS_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": RESULTS_DIR},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "results": RESULTS_STORAGE,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Static files (admin, Swagger UI / ReDoc from the sidecar) -------------------------
STATIC_URL = "/static/"
STATIC_ROOT = env.str("DPP_STATIC_ROOT", default=str(VAR_DIR / "static"))
# Swagger UI and ReDoc assets come from the sidecar package, served by WhiteNoise: no CDN.
# Outside production WhiteNoise finds them in the installed packages (tests and `make run`
# work without a build step, whatever DEBUG is); production serves the compressed copies
# that collectstatic wrote to STATIC_ROOT (docs/design.md §6).
WHITENOISE_USE_FINDERS = not PRODUCTION
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)

# --- DRF and OpenAPI -------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["dpp.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["dpp.authentication.IsActiveTenant"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "dpp.problems.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DecisionProof Platform API",
    "DESCRIPTION": "Pay-per-run decision packs. Errors are RFC 9457 problem documents.",
    "VERSION": "0.4.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and docs are public: a stale Authorization header must not make them 401.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Domain ----------------------------------------------------------------------------
# DPP_EXTRA_PACKS ({"name": "dotted.Class"} as JSON) adds packs, e.g. the tests' packs in
# a worker subprocess.
DPP_PACKS = {
    "decision": "runs.packs.decision.DecisionPack",
    **env.json("DPP_EXTRA_PACKS", default={}),
}
DPP_MAX_ATTEMPTS = env.int("DPP_MAX_ATTEMPTS", default=2)
DPP_REQUEUE_AFTER_SEC = env.int("DPP_REQUEUE_AFTER_SEC", default=120)
DPP_MAX_QUEUE_AGE_SEC = env.int("DPP_MAX_QUEUE_AGE_SEC", default=900)
DPP_DEFAULT_PLAN = env.str("DPP_DEFAULT_PLAN", default="pilot")
DPP_REAPER_BATCH_SIZE = env.int("DPP_REAPER_BATCH_SIZE", default=200)
DPP_REAPER_LEASE_SCAN_SEC = env.float("DPP_REAPER_LEASE_SCAN_SEC", default=30)
DPP_REAPER_REQUEUE_SCAN_SEC = env.float("DPP_REAPER_REQUEUE_SCAN_SEC", default=60)
DPP_REAPER_AUDIT_SEC = env.float("DPP_REAPER_AUDIT_SEC", default=300)
DPP_REAPER_RETENTION_SEC = env.float("DPP_REAPER_RETENTION_SEC", default=3600)
DPP_REAPER_GAUGES_SEC = env.float("DPP_REAPER_GAUGES_SEC", default=15)
DPP_REAPER_USAGE_SEC = env.float("DPP_REAPER_USAGE_SEC", default=300)
# A UTC day is rolled up this long after it ended, once no transfer stamped with it can
# still be uncommitted (billing/usage.py).
DPP_USAGE_SEAL_AFTER_SEC = env.int("DPP_USAGE_SEAL_AFTER_SEC", default=3600)
DPP_METRICS_PORT = env.int("DPP_METRICS_PORT", default=0)
DPP_RATE_LIMIT_POLICIES = "billing.ratelimit_policies.tenant_policies"
DPP_POLL_INTERVAL_MS = env.int("DPP_POLL_INTERVAL_MS", default=1000)
# The kill switch from the environment: on, POST /v1/runs answers 503 submissions-paused
# whatever the admin's platform switch says (dpp/kill_switch.py).
DPP_SUBMISSIONS_PAUSED = env.bool("DPP_SUBMISSIONS_PAUSED", default=False)
DPP_SUBMISSIONS_PAUSED_RETRY_AFTER_SEC = env.int(
    "DPP_SUBMISSIONS_PAUSED_RETRY_AFTER_SEC", default=60
)

# --- Logging: JSON lines on stdout -----------------------------------------------------
LOG_LEVEL = env.str("DPP_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "dpp.logging.ContextFilter"}},
    "formatters": {"json": {"()": "dpp.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["context"],
        },
        "metrics": {"class": "dpp.metrics.LogCounterHandler"},
    },
    "root": {"handlers": ["stdout", "metrics"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log replaces Django's request logging, which would double every 4xx/5xx.
        "django.request": {"level": "CRITICAL"},
        "django.server": {"level": "WARNING"},
    },
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DPP_MAX_BODY_BYTES", default=1_048_576)

# --- Production guard ------------------------------------------------------------------
if PRODUCTION:
    _missing = [
        name
        for name, ok in {
            "DJANGO_SECRET_KEY": SECRET_KEY != DEV_SECRET_KEY and len(SECRET_KEY) >= 32,
            "DPP_API_KEY_PEPPER": DPP_API_KEY_PEPPER != DEV_API_KEY_PEPPER
            and len(DPP_API_KEY_PEPPER) >= 32,
            "DATABASE_URL": DATABASES["default"]["ENGINE"].endswith("postgresql"),
            "REDIS_URL": bool(REDIS_URL),
            "CELERY_BROKER_URL": CELERY_BROKER_URL.startswith("sqs://"),
            "DPP_SQS_RUNS_QUEUE_URL": bool(DPP_SQS_RUNS_QUEUE_URL),
            "DPP_SQS_REAPER_QUEUE_URL": bool(DPP_SQS_REAPER_QUEUE_URL),
            "AWS_STORAGE_BUCKET_NAME": bool(AWS_STORAGE_BUCKET_NAME),
            # With DEBUG off and no hosts, Django would answer every request 400.
            "DJANGO_ALLOWED_HOSTS": bool(ALLOWED_HOSTS),
        }.items()
        if not ok
    ]
    if _missing:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production refuses to start: missing, insecure or embedded-default "
            "values for " + ", ".join(_missing)
        )
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_ENV=production refuses to start with DJANGO_DEBUG on")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # The API is HTTPS-only; the preload token only consents, submission is a manual step.
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    X_FRAME_OPTIONS = "DENY"
