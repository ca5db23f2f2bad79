"""The webhooks app's settings: ``settings.WEBHOOKS`` over ``DEFAULTS``, read
at call time (override_settings works)."""

from typing import Any

from workflows.conf import reader

DEFAULTS: dict[str, Any] = {
    "MAX_ATTEMPTS": 8,  # deliveries of one event to one webhook before it is FAILED
    "TIMEOUT": 10.0,  # seconds per request
    "CACHE_SECONDS": 5.0,  # how long "no active webhook" is remembered
}


get = reader("WEBHOOKS", DEFAULTS)
