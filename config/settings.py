"""Gust settings. Everything that differs between machines comes from the
environment; the defaults give the embedded set-up (SQLite in WAL mode and
django-q2's ORM broker) that ``bin/run`` starts.

DATABASE_URL   e.g. postgres://postgres@127.0.0.1:5432/test (default: SQLite file)
GUST_BROKER    orm (default) or redis
REDIS_URL      redis://127.0.0.1:6379/0
GUST_SECRET_KEY (default: a random key kept in $GUST_VAR_DIR/secret_key), GUST_TLS,
GUST_DEBUG, GUST_ALLOWED_HOSTS, GUST_WORKERS, GUST_LOG_LEVEL, GUST_METRICS_TOKEN,
GUST_EXPIRATION_* (the execution expiration policy, below), GUST_PG_IDLE_IN_TRANSACTION_TIMEOUT,
GUST_PG_TCP_KEEPALIVE
GUST_EGRESS_DENIED_CIDRS, GUST_EGRESS_ALLOWED_CIDRS, GUST_EGRESS_ALLOWED_HOSTS (comma-separated)
"""

import os
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("GUST_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: str) -> list[str]:
    """Comma-separated values; set but empty is an empty list."""
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


def _secret_key() -> str:
    """GUST_SECRET_KEY, or a random key made once and kept in the var
    directory (mode 0600): never a key anyone else knows, and the two-command
    start still works. Signed callback URLs and sessions depend on it."""
    key = os.environ.get("GUST_SECRET_KEY", "").strip()
    if key:
        return key
    path = VAR_DIR / "secret_key"
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # made by an earlier start (or by a process starting beside this one)
        for _ in range(50):
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty: delete it or set GUST_SECRET_KEY") from None
    key = secrets.token_urlsafe(64)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


SECRET_KEY = _secret_key()
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
    "drf_spectacular_sidecar",  # Swagger UI's files for /api/docs, served from here (no CDN)
    "django_q",
    "workflows",
    "webhooks",
    "tracker",
    "approvals",
    "ops",
    "axes",
    "bench",  # the benchmark commands (bench/README.md); it imports Gust, Gust never imports it
]

# Failed logins are counted per user name and address (django-axes): the
# login page, the admin, the Keystone stand-in and Basic auth alike.
AUTHENTICATION_BACKENDS = ["config.security.LoginRateLimit", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("GUST_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("GUST_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.security.locked_out"
AXES_VERBOSE = True  # each failure is logged (logger "axes") with its user name and address
AXES_SENSITIVE_PARAMETERS = []

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "workflows.middleware.RequestId",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session, auth and messages middleware, each passing an API
    # request without a session cookie through untouched
    # (workflows.middleware.sessionless).
    "workflows.middleware.Sessions",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "workflows.middleware.Authentication",
    "workflows.middleware.DashboardLoginRequired",
    "workflows.middleware.Messages",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Behind a TLS-terminating proxy (GUST_TLS=1, the production set-up):
# https only, secure cookies, HSTS; `manage.py check --deploy` is clean.
if env_bool("GUST_TLS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("GUST_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("GUST_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("GUST_HSTS_PRELOAD", True)
    # A load balancer probes the processes themselves over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# The operator console (ops.conf): /metrics takes a login, an API token, or this bearer token.
OPS = {"METRICS_TOKEN": os.environ.get("GUST_METRICS_TOKEN", "").strip()}

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
    # failing with "database is locked" (measured, see DESIGN.md section 6);
    # the threads of one process queue on a lock instead of in SQLite's
    # sleeping busy handler (config/sqlite3/base.py). Connections are kept
    # (CONN_MAX_AGE 60 s, per thread) instead of opened, with their PRAGMAs,
    # on every request: bench/README.md, "HTTP path".
    DATABASES["default"]["ENGINE"] = "config.sqlite3"
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("GUST_TEST_SQLITE", str(VAR_DIR / "test.sqlite3"))}

if DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    # A host that dies inside a transaction (power lost, link down) leaves its
    # session open on the server until TCP notices, hours later, and its row
    # locks stop every other worker that touches the same execution: the
    # multi-host run stopped a worker host mid-run and a survivor waited 300 s
    # (bench/README.md, "Multi-host"). Gust never waits inside a transaction
    # (I/O runs outside them), so the server ends a session idle in one after
    # GUST_PG_IDLE_IN_TRANSACTION_TIMEOUT seconds (0: never) and its locks go.
    #
    # That timer only runs once the server has answered a whole request. A
    # host that dies halfway through sending one (a large INSERT split over
    # TCP segments, the rest lost with the link) leaves its session waiting for
    # the rest with the locks held and no timer, and the server's answer to
    # the part it got unacknowledged (seen in the multi-host run, one time in
    # three). The server's TCP timeouts end that session: tcp_user_timeout
    # (unacknowledged data) of 2 × GUST_PG_TCP_KEEPALIVE seconds, keepalive
    # probes after that many idle seconds (0: the server's defaults, hours).
    _idle = float(os.environ.get("GUST_PG_IDLE_IN_TRANSACTION_TIMEOUT", "60"))
    _keepalive = int(float(os.environ.get("GUST_PG_TCP_KEEPALIVE", "30")))
    _server = []
    if _idle > 0:
        _server.append(f"-c idle_in_transaction_session_timeout={int(_idle * 1000)}")
    if _keepalive > 0:
        _server.append(
            f"-c tcp_keepalives_idle={_keepalive} -c tcp_keepalives_interval={max(1, _keepalive // 3)} "
            f"-c tcp_keepalives_count=3 -c tcp_user_timeout={_keepalive * 2000}"
        )
    _pg_options = DATABASES["default"].setdefault("OPTIONS", {})
    if _server:
        _pg_options["options"] = " ".join(_server)
    # pg_stat_activity names the Gust process of each session: "gust worker",
    # "gust run_tracker", "gust web" (gunicorn, runserver is "gust runserver").
    _command = sys.argv[1] if len(sys.argv) > 1 and Path(sys.argv[0]).name == "manage.py" else "web"
    _pg_options.setdefault("application_name", f"gust {_command}"[:63])

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
LOGIN_URL = "/accounts/login/"  # any active user, not only staff (approvers)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "workflows.auth.XAuthTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["workflows.auth.LoginRequiredUnlessOpen"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["api.parsers.JSONParser", "api.parsers.PlainTextParser"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
# /api/schema documents Gust's own /api, generated from its serializers;
# /api/schema/v2 serves the hand-written document of the Mistral-shaped /v2
# (api/openapi_v2.yaml). /api/docs shows either, picked in Swagger UI's top
# bar. Swagger UI comes from drf-spectacular-sidecar and has no online
# validator, so the page works on a host without internet. The settings are
# JavaScript (a string, which drf-spectacular passes through) because the
# standalone preset that draws the selector is a JavaScript object.
SPECTACULAR_SETTINGS = {
    "TITLE": "Gust API",
    "VERSION": "0.1.0",
    "PREPROCESSING_HOOKS": ["config.schema.only_gust_api"],
    "SERVE_PERMISSIONS": ["workflows.auth.LoginRequiredUnlessOpen"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": """{
  "deepLinking": true,
  "validatorUrl": null,
  "urls": [{"url": "/api/schema", "name": "Gust /api (approvals)"},
           {"url": "/api/schema/v2", "name": "Mistral-compatible /v2"}],
  "presets": [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  "layout": "StandaloneLayout"
}""",
}

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
    # Successful jobs are not stored (Gust keeps every result in its own rows);
    # storing them cost the monitor a SELECT ... FOR UPDATE of up to save_limit
    # rows per job (bench/README.md, "Broker throughput"). Failures are stored.
    "save_limit": int(os.environ.get("GUST_Q_SAVE_LIMIT", "-1")),
    # Jobs the ORM broker takes per dequeue (one write for all of them).
    "bulk": int(os.environ.get("GUST_Q_BULK", "5")),
    "poll": 0.1,
    "label": "Gust worker queue",
}
if _broker == "redis":
    Q_CLUSTER["redis"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
else:
    Q_CLUSTER["orm"] = "default"
Q_CLUSTER["broker_class"] = "workflows.queue.gust_broker"  # the ORM broker taking several jobs per write
if env_bool("GUST_SYNC_WORKER", False):
    Q_CLUSTER["sync"] = True  # tests: run worker jobs inline

# Each app reads its own namespace at call time through its conf module, which
# holds the defaults: GUST (workflows.conf), WEBHOOKS (webhooks.conf), TRACKER
# (tracker.conf), OPS (ops.conf). Here they are filled from the environment.
GUST = {
    # The API asks for a login by default: a token for clients (X-Auth-Token, as
    # the mistral CLI sends with --os-auth-token) or the browser's session.
    # GUST_API_AUTH=0 opens it, as Mistral's auth_enable = False does.
    "API_AUTH": env_bool("GUST_API_AUTH", True),
    # Base URL that std.mistral_http sends as Mistral-Callback-URL.
    "PUBLIC_URL": os.environ.get("GUST_PUBLIC_URL", "http://127.0.0.1:8000"),
    # Deadlines the tracker's overdue sweep enforces, so nothing stays RUNNING
    # forever. A queued worker action that no worker started within
    # WORKER_QUEUE_TIMEOUT fails "not started"; a started one holds a lease of
    # WORKER_LEASE seconds that its worker renews while it runs (kill -9 of the
    # worker: it fails "worker lost" one lease later, and is never re-run behind
    # the user's back); an async action waits ASYNC_ACTION_TIMEOUT for its
    # result once started (heartbeats extend it; 0 = no deadline).
    "WORKER_QUEUE_TIMEOUT": float(os.environ.get("GUST_WORKER_QUEUE_TIMEOUT", "3600")),
    # An action no worker claimed for this long is queued again (its job may
    # have died with a worker); a claimed action is never run twice.
    "WORKER_REDISPATCH_AFTER": float(os.environ.get("GUST_WORKER_REDISPATCH_AFTER", "300")),
    "WORKER_LEASE": float(os.environ.get("GUST_WORKER_LEASE", "30")),
    "ASYNC_ACTION_TIMEOUT": float(os.environ.get("GUST_ASYNC_ACTION_TIMEOUT", str(7 * 24 * 3600))),
    # On SIGTERM a worker finishes its jobs in flight for at most this long,
    # then stops the rest (their actions are failed by the overdue sweep).
    "WORKER_STOP_TIMEOUT": float(os.environ.get("GUST_WORKER_STOP_TIMEOUT", "30")),
}
# Bounds on everything a workflow or an API caller controls, read at call time
# through workflows.conf (defaults in core.lang.limits.Limits).
GUST.update(
    {
        # Largest stored result, published variables, context, input or output (KB;
        # -1: none), as Mistral's execution_field_size_limit_kb.
        "EXECUTION_FIELD_SIZE_LIMIT_KB": int(os.environ.get("GUST_EXECUTION_FIELD_SIZE_LIMIT_KB", "1024")),
        # Wall-clock seconds one expression may run (0: no limit).
        "EXPRESSION_TIMEOUT": float(os.environ.get("GUST_EXPRESSION_TIMEOUT", "2")),
        # YAQL's own quotas (Mistral's [yaql] limit_iterators and memory_quota).
        "YAQL_LIMIT_ITERATORS": int(os.environ.get("GUST_YAQL_LIMIT_ITERATORS", "100000")),
        "YAQL_MEMORY_QUOTA": int(os.environ.get("GUST_YAQL_MEMORY_QUOTA", "50000000")),
        # Longest range() in a Jinja expression.
        "JINJA_MAX_RANGE": int(os.environ.get("GUST_JINJA_MAX_RANGE", "10000")),
        # Deepest nesting of a YAML definition or of JSON sent to the API.
        "MAX_NESTING_DEPTH": int(os.environ.get("GUST_MAX_NESTING_DEPTH", "100")),
        # Largest workflow definition (KB), and the values YAML aliases may add.
        "DEFINITION_SIZE_LIMIT_KB": int(os.environ.get("GUST_DEFINITION_SIZE_LIMIT_KB", "1024")),
        "YAML_ALIAS_LIMIT": int(os.environ.get("GUST_YAML_ALIAS_LIMIT", "10000")),
        # Engine-local steps (tasks started) per transaction, and the seconds they
        # may take together (well under SQLite's 20 s busy timeout); the rest
        # continues in a worker job, so a tight or slow loop yields the lock (a
        # noop step takes about 0.7 ms).
        "ENGINE_STEPS_PER_TRANSACTION": int(os.environ.get("GUST_ENGINE_STEPS_PER_TRANSACTION", "200")),
        "ENGINE_SECONDS_PER_TRANSACTION": float(os.environ.get("GUST_ENGINE_SECONDS_PER_TRANSACTION", "5")),
        # Deepest chain of sub-workflows under one root execution (bounds a recursion).
        "SUBWORKFLOW_MAX_DEPTH": int(os.environ.get("GUST_SUBWORKFLOW_MAX_DEPTH", "20")),
        # Rows a /v2 list returns without `limit`, and the most it may ask for.
        "API_LIST_DEFAULT_LIMIT": int(os.environ.get("GUST_API_LIST_DEFAULT_LIMIT", "100")),
        "API_LIST_MAX_LIMIT": int(os.environ.get("GUST_API_LIST_MAX_LIMIT", "1000")),
        # Task, action and sub-workflow executions one execution report may hold.
        "REPORT_MAX_ENTRIES": int(os.environ.get("GUST_REPORT_MAX_ENTRIES", "10000")),
    }
)
# Retention: the execution expiration policy (workflows/retention.py), as
# Mistral's [execution_expiration_policy]; evaluated by the tracker process.
# Minutes for the interval and the age; 0 turns that part off (the default: nothing is deleted).
GUST["EXPIRATION"] = {
    "EVALUATION_INTERVAL": os.environ.get("GUST_EXPIRATION_EVALUATION_INTERVAL", "0"),
    "OLDER_THAN": os.environ.get("GUST_EXPIRATION_OLDER_THAN", "0"),
    "MAX_FINISHED_EXECUTIONS": os.environ.get("GUST_EXPIRATION_MAX_FINISHED_EXECUTIONS", "0"),
    "BATCH_SIZE": os.environ.get("GUST_EXPIRATION_BATCH_SIZE", "100"),
    "IGNORED_STATES": os.environ.get("GUST_EXPIRATION_IGNORED_STATES", ""),
    "SECONDS_PER_CYCLE": os.environ.get("GUST_EXPIRATION_SECONDS_PER_CYCLE", "1"),
}
# The results tracker (seed 001's query_interval and thread_pool_size), read at
# call time through tracker.conf so override_settings works.
TRACKER = {
    "QUERY_INTERVAL": float(os.environ.get("GUST_QUERY_INTERVAL", "5.0")),
    "THREAD_POOL_SIZE": int(os.environ.get("GUST_THREAD_POOL_SIZE", "10")),
    # Called once per tracker cycle: approval reminders, escalation and expiry.
    "PERIODIC": ["approvals.services.sweep", "workflows.retention.periodic"],
    "QUERIES": dict(kv.split("=", 1) for kv in os.environ.get("GUST_TRACKER_QUERIES", "").split(",") if "=" in kv),
}
if os.environ.get("GUST_BENCH_RESULTS_DIR"):  # where benchmark results go (tracker.conf.results_dir)
    TRACKER["BENCH_RESULTS_DIR"] = os.environ["GUST_BENCH_RESULTS_DIR"]

# Where outgoing HTTP may go (std.http, std.mistral_http, gust.http_job, the
# tracker's status queries, webhooks), read at call time by workflows.egress.
# Workflow authors choose those URLs and the requests leave from this host, so
# by default they may not reach its loopback services, the link-local range
# with the cloud metadata service (169.254.169.254), nor 0.0.0.0 and ::, which
# mean this host; as Mistral 23's [action_std_http] denied_cidrs. bin/run
# allows loopback for the samples. Add private ranges (10.0.0.0/8, ...) to the
# denied ones when workflow authors must not reach the internal network.
GUST["EGRESS"] = {
    "DENIED_CIDRS": env_list(
        "GUST_EGRESS_DENIED_CIDRS", "127.0.0.0/8,::1/128,169.254.0.0/16,fe80::/10,0.0.0.0/8,::/128"
    ),
    # Allowed even inside a denied range, e.g. 127.0.0.1/32 for a local service.
    "ALLOWED_CIDRS": env_list("GUST_EGRESS_ALLOWED_CIDRS", ""),
    # Host names allowed whatever they resolve to; ".example.com" includes subdomains.
    "ALLOWED_HOSTS": env_list("GUST_EGRESS_ALLOWED_HOSTS", ""),
}

# Approval notifications: printed to the console in development, SMTP
# (GUST_EMAIL_HOST, GUST_EMAIL_PORT) in production (GUST_TLS=1);
# GUST_EMAIL_BACKEND chooses another backend.
_mail_backend = "smtp" if env_bool("GUST_TLS", False) else "console"
MAILERS = {
    "default": {
        "BACKEND": os.environ.get("GUST_EMAIL_BACKEND", f"django.core.mail.backends.{_mail_backend}.EmailBackend"),
        **(
            {
                "OPTIONS": {
                    "host": os.environ.get("GUST_EMAIL_HOST", "localhost"),
                    "port": int(os.environ.get("GUST_EMAIL_PORT", "25")),
                }
            }
            if _mail_backend == "smtp"
            else {}
        ),
    }
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
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},  # failed logins, lock-outs
    },
}
