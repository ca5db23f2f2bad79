"""The OpenAPI document of ``/v2``, served at ``/api/schema/v2``.

drf-spectacular generates ``/api/schema`` from Gust's own ``/api`` views; the
Mistral-shaped ``/v2`` views are plain APIViews without serializers, so their
document is written by hand in ``openapi_v2.yaml`` beside this module (and
tests/api/test_openapi_v2.py keeps it in step with ``api/urls.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import yaml
from drf_spectacular.views import SpectacularAPIView
from rest_framework.response import Response

DOCUMENT = Path(__file__).with_name("openapi_v2.yaml")


@functools.cache
def v2_document() -> dict:
    """The parsed document; a file of the package, read once per process."""
    return yaml.safe_load(DOCUMENT.read_text())


class V2Schema(SpectacularAPIView):
    """``/api/schema/v2``: YAML, or JSON with ``?format=json`` or an Accept
    header, for whoever may read ``/api/schema`` (``SERVE_PERMISSIONS``)."""

    def _get_schema_response(self, request):
        filename = f"Gust v2.{self.perform_content_negotiation(request, force=True)[0].format}"
        return Response(data=v2_document(), headers={"Content-Disposition": f'inline; filename="{filename}"'})
