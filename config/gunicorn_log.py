"""gunicorn's access log, cheaper per request.

gunicorn builds its log "atoms" from every request header, response header
and WSGI environ entry, for any format a user might write; with the default
(combined) format only nine of them are printed, and building the rest cost
about 0.15 ms of every API request here (bench/README.md, "HTTP path").
``AccessLog`` builds those nine when the format is gunicorn's default, so the
line printed is the same, and falls back to gunicorn's own atoms for any
other ``--access-logformat``. Used by ``bin/run``, ``bin/prod`` and the
benchmarks (``--logger-class config.gunicorn_log.AccessLog``).
"""

from gunicorn import glogging
from gunicorn.config import AccessLogFormat

DEFAULT_FORMAT = AccessLogFormat.default


class AccessLog(glogging.Logger):
    def atoms(self, resp, req, environ, request_time):
        if self.cfg.access_log_format != DEFAULT_FORMAT:
            return super().atoms(resp, req, environ, request_time)
        status = resp.status
        if isinstance(status, str):
            status = status.split(None, 1)[0]
        sent = getattr(resp, "sent", None)
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": self._get_user(environ) or "-",
            "t": self.now(),
            "r": f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}",
            "s": status,
            "b": sent is not None and str(sent) or "-",
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
        }
