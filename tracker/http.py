"""Keep-alive status GETs for the tracker, on ``http.client``.

A poll is one small GET with a JSON answer, thousands a second at scale, so
its cost is the tracker's cost: through ``requests`` a GET costs about three
times the CPU of a bare ``http.client`` request on a kept connection
(bench/README.md, "the floor"). Each tracker pool thread keeps one
connection per (scheme, host, port) and reuses it.

The egress policy holds as for every outgoing request (``workflows.egress``):
a connection dials only addresses ``egress.checked_addresses`` allowed. What
this client does not handle itself goes through the checked ``requests``
session instead: a URL an HTTP proxy applies to, and redirects (each hop is
checked there).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import urllib.request
from urllib.parse import urlsplit

from workflows import egress

MAX_BODY = 10 * 1024 * 1024  # a status answer larger than this is an error, not a memory spike
_STALE = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError)
_local = threading.local()


class StatusError(Exception):
    """The status URL did not answer with JSON (network error, HTTP error, too large).
    ``status``: the HTTP status when there was an answer, else None."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = _checked_socket(self.host, self.port, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def connect(self):
        sock = _checked_socket(self.host, self.port, self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _checked_socket(host: str, port: int, timeout) -> socket.socket:
    error = None
    for family, kind, proto, _, sockaddr in egress.checked_addresses(host, port):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"{host} resolves to no address")


def _connection(scheme: str, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    key = (scheme, host, port)
    conn = conns.get(key)
    if conn is None:
        if scheme == "https":
            conn = _CheckedHTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            conn = _CheckedHTTPConnection(host, port, timeout=timeout)
        conns[key] = conn
    conn.timeout = timeout
    return conn


def _forget(scheme: str, host: str, port: int) -> None:
    conn = getattr(_local, "conns", {}).pop((scheme, host, port), None)
    if conn is not None:
        conn.close()


def close_all() -> None:
    """Close this thread's kept connections (a tracker thread that stops)."""
    for conn in getattr(_local, "conns", {}).values():
        conn.close()
    _local.conns = {}


def _proxied(scheme: str, host: str) -> bool:
    """Whether an HTTP proxy applies (the environment's, as requests reads it),
    remembered per thread and host: reading it costs more than a kept-alive GET."""
    seen = getattr(_local, "proxied", None)
    if seen is None:
        seen = _local.proxied = {}
    key = (scheme, host)
    if key not in seen:
        seen[key] = bool(urllib.request.getproxies().get(scheme)) and not urllib.request.proxy_bypass(host)
    return seen[key]


def get_json(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None):
    """GET ``url`` and decode its JSON answer. Raises egress.EgressRefused when
    the policy refuses the address, StatusError for anything else that went wrong.
    ``headers`` are added to ``Accept: application/json`` (e.g. an auth token)."""
    return _request("GET", url, None, timeout, headers)


def post_json(url: str, payload, timeout: float = 30.0, headers: dict[str, str] | None = None):
    """POST ``payload`` as JSON to ``url`` on this thread's kept connection and
    decode the JSON answer; raises as ``get_json``. For reads only (a batch
    status query, bench/queries.py): like a GET it is sent once more on a new
    connection when the kept one turned out closed."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _request("POST", url, body, timeout, {"Content-Type": "application/json", **(headers or {})})


_JSON_ONLY = {"Accept": "application/json"}
_targets: dict[str, tuple] = {}  # url -> (scheme, host, port, target, plain): a status URL is asked again and again


def _target(url: str) -> tuple:
    known = _targets.get(url)
    if known is None:
        parts = urlsplit(url)
        plain = parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.username
        port = (parts.port or (443 if parts.scheme == "https" else 80)) if plain else None
        known = (
            parts.scheme,
            parts.hostname,
            port,
            (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
            plain,
        )
        if len(_targets) > 100_000:
            _targets.clear()
        _targets[url] = known
    return known


def _request(method: str, url: str, body: bytes | None, timeout: float, headers: dict[str, str] | None):
    scheme, host, port, target, plain = _target(url)
    headers = {**_JSON_ONLY, **headers} if headers else _JSON_ONLY
    if not plain or _proxied(scheme, host):
        return _with_requests(method, url, body, timeout, headers)
    for attempt in (1, 2):  # a kept connection the server closed meanwhile: once more on a new one
        conn = _connection(scheme, host, port, timeout)
        reused = conn.sock is not None
        try:
            conn.request(method, target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(MAX_BODY + 1)
        except egress.EgressRefused as exc:
            _forget(scheme, host, port)
            exc.url = exc.url or url
            raise
        except _STALE as exc:
            _forget(scheme, host, port)
            if reused and attempt == 1:
                continue
            raise StatusError(f"status query to {egress.shown(url)} failed: {exc!r}") from exc
        except (OSError, http.client.HTTPException) as exc:
            _forget(scheme, host, port)
            raise StatusError(f"status query to {egress.shown(url)} failed: {exc!r}") from exc
        if resp.will_close:
            _forget(scheme, host, port)
        if 300 <= resp.status < 400:
            # Redirects: each hop checked by the requests session.
            return _with_requests(method, url, body, timeout, headers)
        return _decode(url, resp.status, data)
    raise AssertionError("unreachable")


def _decode(url: str, status: int, body: bytes):
    if len(body) > MAX_BODY:
        raise StatusError(f"status answer of {egress.shown(url)} is larger than {MAX_BODY} bytes", status)
    if status >= 400:
        raise StatusError(f"status query to {egress.shown(url)} answered HTTP {status}", status)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise StatusError(f"status answer of {egress.shown(url)} is not JSON: {exc}", status) from exc


def _session():
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = egress.session()
    return s


def _with_requests(method: str, url: str, body: bytes | None, timeout: float, headers: dict[str, str]):
    import requests

    try:
        with _session().request(method, url, data=body, timeout=timeout, stream=True, headers=headers) as resp:
            data = resp.raw.read(MAX_BODY + 1, decode_content=True)
            return _decode(url, resp.status_code, data)
    except requests.RequestException as exc:
        raise StatusError(f"status query to {egress.shown(url)} failed: {exc}") from exc
