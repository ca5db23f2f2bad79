"""Every API error is ``{"faultstring": "..."}`` with the right status, as in
Mistral (whose clients print ``faultstring``). Gust adds ``errors`` (every
validation error with its path) and ``state`` (the current state, on 409)."""

from django.http import Http404
from rest_framework import exceptions as drf_exc
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler

from workflows.errors import Conflict, GustError, InvalidDefinition


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return "; ".join(_flatten(v) for v in detail)
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, GustError):
        body = {"faultstring": exc.message}
        if isinstance(exc, InvalidDefinition):
            body["errors"] = exc.errors
        if isinstance(exc, Conflict) and exc.state:
            body["state"] = exc.state
        return Response(body, status=exc.status)
    if isinstance(exc, Http404):
        return Response({"faultstring": str(exc) or "Not found"}, status=404)
    response = drf_handler(exc, context)
    if response is not None and isinstance(exc, drf_exc.APIException):
        response.data = {"faultstring": _flatten(exc.detail)}
    return response
