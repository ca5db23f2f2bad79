"""The operator console's settings: ``settings.OPS`` over ``DEFAULTS``, read
at call time (override_settings works)."""

from typing import Any

from workflows.conf import reader

DEFAULTS: dict[str, Any] = {
    # A bearer token that may read /metrics without a login (empty: none).
    "METRICS_TOKEN": "",
}


get = reader("OPS", DEFAULTS)
