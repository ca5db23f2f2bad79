"""Gust settings. Everything that differs between machines comes from the
environment; the defaults give the embedded set-up (SQLite in WAL mode and
django-q2's ORM broker) that ``bin/run`` starts.

DATABASE_URL   e.g. postgres://postgres@127.0.0.1:5432/test (default: SQLite file)
GUST_BROKER    orm (default) or redis
REDIS_URL      redis://127.0.0.1:6379/0
GUST_SECRET_KEY, GUST_DEBUG, GUST_ALLOWED_HOSTS, GUST_WORKERS, GUST_LOG_LEVEL
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GUST_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in ("1", "true", "yes", "on")


SECRET_KEY = os.environ.get("GUST_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("GUST_DEBUG", False)
ALLOWED_HOSTS = os.environ.get("GUST_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_q",
    "workflows",
    "tracker",
    "approvals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "workflows.middleware.DashboardLoginRequired",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
APPEND_SLASH = False  # /v2/workflows and /v2/workflows/ are both routed explicitly

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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

_default_sqlite = f"sqlite:///{VAR_DIR / 'gust.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL", _default_sqlite), conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # the directory only; tables come from `migrate`
    # IMMEDIATE transactions + a busy timeout: two writers queue instead of
    # failing with "database is locked" (measured, see DESIGN.md section 6).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("GUST_TEST_SQLITE", str(VAR_DIR / "test.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
LOGIN_URL = "/accounts/login/"  # any active user, not only staff (approvers)

# The API asks for a login by default: a token for clients (X-Auth-Token, as
# the mistral CLI sends with --os-auth-token) or the browser's session.
# GUST_API_AUTH=0 opens it, as Mistral's auth_enable = False does.
API_AUTH = env_bool("GUST_API_AUTH", True)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "workflows.api.auth.XAuthTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["workflows.api.auth.LoginRequiredUnlessOpen"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "workflows.api.parsers.PlainTextParser"],
    "EXCEPTION_HANDLER": "workflows.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {"TITLE": "Gust API", "VERSION": "0.1.0"}

_broker = os.environ.get("GUST_BROKER", "orm")
Q_CLUSTER = {
    "name": os.environ.get("GUST_QUEUE", "gust"),
    "workers": int(os.environ.get("GUST_WORKERS", "2")),
    # A job not acknowledged within "retry" seconds (its worker died) is handed
    # out again by the ORM broker; env so the reliability report can use short ones.
    "timeout": int(os.environ.get("GUST_Q_TIMEOUT", "300")),
    "retry": int(os.environ.get("GUST_Q_RETRY", "360")),
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "poll": 0.1,
    "label": "Gust worker queue",
}
if _broker == "redis":
    Q_CLUSTER["redis"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
else:
    Q_CLUSTER["orm"] = "default"
if env_bool("GUST_SYNC_WORKER", False):
    Q_CLUSTER["sync"] = True  # tests: run worker jobs inline

# Gust's own settings, read at call time through workflows.conf.
GUST = {
    # Base URL that std.mistral_http sends as Mistral-Callback-URL.
    "PUBLIC_URL": os.environ.get("GUST_PUBLIC_URL", "http://127.0.0.1:8000"),
    # A worker action with no result after this many seconds is failed by the
    # tracker's sweep (a crashed worker, or a job lost between commit and enqueue).
    "WORKER_ACTION_TIMEOUT": float(os.environ.get("GUST_WORKER_ACTION_TIMEOUT", "600")),
    # On SIGTERM a worker finishes its jobs in flight for at most this long,
    # then stops the rest (their actions are failed by the overdue sweep).
    "WORKER_STOP_TIMEOUT": float(os.environ.get("GUST_WORKER_STOP_TIMEOUT", "30")),
}
# The results tracker (seed 001's query_interval and thread_pool_size), read at
# call time through tracker.conf so override_settings works.
TRACKER = {
    "QUERY_INTERVAL": float(os.environ.get("GUST_QUERY_INTERVAL", "5.0")),
    "THREAD_POOL_SIZE": int(os.environ.get("GUST_THREAD_POOL_SIZE", "10")),
    # Called once per tracker cycle: approval reminders, escalation and expiry.
    "PERIODIC": ["approvals.services.sweep"],
    "QUERIES": dict(kv.split("=", 1) for kv in os.environ.get("GUST_TRACKER_QUERIES", "").split(",") if "=" in kv),
}
if os.environ.get("GUST_COUNT_QUERIES_DIR"): import bench.querycount  # noqa: E701,F401 -- SQL counts for compare_completion

# Approval notifications; the console by default (GUST_EMAIL_BACKEND to change).
MAILERS = {
    "default": {"BACKEND": os.environ.get("GUST_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")}
}
DEFAULT_FROM_EMAIL = os.environ.get("GUST_FROM_EMAIL", "gust@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "trace": {"format": "%(asctime)s %(process)d %(levelname)s %(name)s [-] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "trace"}},
    "loggers": {
        "gust": {"handlers": ["console"], "level": os.environ.get("GUST_LOG_LEVEL", "INFO"), "propagate": False},
        "django_q": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
