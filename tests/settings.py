"""Test settings: worker jobs run inline (django-q2 sync mode)."""

import os

os.environ.setdefault("GUST_SYNC_WORKER", "1")

from config.settings import *  # noqa: E402,F401,F403
