"""Test settings: worker jobs run inline (django-q2 sync mode)."""

import os

os.environ.setdefault("GUST_SYNC_WORKER", "1")
# Most API tests exercise the API itself; tests/api/test_auth.py turns the
# login requirement back on to check it.
os.environ.setdefault("GUST_API_AUTH", "0")
# A test's own transaction stays open while it waits for the processes it started.
os.environ.setdefault("GUST_PG_IDLE_IN_TRANSACTION_TIMEOUT", "0")
# The tests' outside services listen on 127.0.0.1, as bin/run's samples call
# Gust itself: allow loopback, explicitly. The processes tests start inherit it;
# tests/test_egress.py checks the production default with override_settings.
os.environ.setdefault("GUST_EGRESS_ALLOWED_CIDRS", "127.0.0.0/8,::1")

from config.settings import *  # noqa: E402,F401,F403

# Static files are served from the app directories in tests (no collectstatic).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
