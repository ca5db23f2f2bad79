import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError

from core.lang.values import NotJson, to_json
from workflows import conf


class PlainTextParser(parsers.BaseParser):
    """Workflow definitions arrive as YAML in a text/plain body, as in Mistral."""

    media_type = "text/*"

    def parse(self, stream, media_type=None, parser_context=None):
        charset = (parser_context or {}).get("encoding") or "utf-8"
        try:
            return stream.read().decode(charset)
        except UnicodeDecodeError as exc:
            raise ParseError(f"The body is not valid {charset}: {exc}") from None


class JSONParser(parsers.JSONParser):
    """DRF's strict JSON parser (no NaN or Infinity), bounded: nesting past
    the depth limit, NUL characters and lone surrogates (which PostgreSQL
    refuses) are a 400 naming the path, not a 500 later."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {conf.limits().max_depth} levels") from None
        try:
            return to_json(data, max_depth=conf.limits().max_depth, root="body")
        except NotJson as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str):
    """``json.loads`` as strict as the body parser; ValueError for bad JSON."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {conf.limits().max_depth} levels") from None
