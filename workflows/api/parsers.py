from rest_framework.parsers import BaseParser


class PlainTextParser(BaseParser):
    """Workflow definitions arrive as YAML in a text/plain body, as in Mistral."""

    media_type = "text/*"

    def parse(self, stream, media_type=None, parser_context=None):
        charset = (parser_context or {}).get("encoding") or "utf-8"
        return stream.read().decode(charset)
