"""gunicorn's settings for the production start (``bin/prod``), from the
environment only: ``gunicorn -c config/gunicorn.py config.wsgi``.

GUST_BIND (127.0.0.1:$PORT, PORT 8000), GUST_WEB_WORKERS (2), GUST_WEB_THREADS (4),
GUST_WEB_TIMEOUT (60 s), GUST_FORWARDED_ALLOW_IPS (127.0.0.1: the proxy
whose X-Forwarded-* headers are believed), PROMETHEUS_MULTIPROC_DIR.
"""

import os

bind = [b.strip() for b in os.environ.get("GUST_BIND", f"127.0.0.1:{os.environ.get('PORT', '8000')}").split(",")]
workers = int(os.environ.get("GUST_WEB_WORKERS", "2"))
threads = int(os.environ.get("GUST_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUST_WEB_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUST_WEB_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
forwarded_allow_ips = os.environ.get("GUST_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUST_ACCESS_LOG", "-") or None
logger_class = "config.gunicorn_log.AccessLog"  # the same lines as gunicorn's, cheaper
loglevel = os.environ.get("GUST_WEB_LOG_LEVEL", "warning")
proc_name = "gust-web"


def child_exit(server, worker):
    """A gunicorn worker's live gauges leave with it; its counters stay
    summed (prometheus_client's multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
