"""drf-spectacular hooks."""


def only_gust_api(endpoints):
    """Keep Gust's own ``/api`` endpoints in ``/api/schema``; the Mistral-shaped
    ``/v2`` and the Keystone stand-in are documented by Mistral's references."""
    return [e for e in endpoints if e[0].startswith("/api/")]
