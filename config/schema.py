"""drf-spectacular hooks."""


def only_gust_api(endpoints):
    """Keep Gust's own ``/api`` endpoints in ``/api/schema``. The Mistral-shaped
    ``/v2`` has its hand-written document at ``/api/schema/v2``
    (``api/openapi_v2.yaml``); the Keystone stand-in follows Keystone's reference."""
    return [e for e in endpoints if e[0].startswith("/api/")]
