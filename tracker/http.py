"""Keep-alive status GETs for the tracker, with a small HTTP/1.1 client of its own.

A poll is one small GET with a JSON answer, thousands a second at scale, so
its cost is the tracker's cost. Through ``requests`` a GET costs about three
times the CPU of a bare ``http.client`` request on a kept connection, and
``http.client`` spends most of its own on parsing the answer's headers with
the ``email`` package (bench/README.md, "the floor"). Here a request is one
``sendall`` of bytes built once per URL, and the answer is read into one
buffer: the status line, the few headers that frame the body
(``Content-Length``, ``Transfer-Encoding: chunked``, ``Connection``), the
body. Each tracker pool thread keeps one connection per (scheme, host, port)
and reuses it; a kept connection the server closed meanwhile is replaced
once.

The egress policy holds as for every outgoing request (``workflows.egress``):
a connection dials only addresses ``egress.checked_addresses`` allowed. What
this client does not handle itself goes through the checked ``requests``
session instead: a URL an HTTP proxy applies to, a URL with credentials or
characters a request line can not carry, and redirects (each hop is checked
there).
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import urllib.request
from urllib.parse import urlsplit

from workflows import egress

MAX_BODY = 10 * 1024 * 1024  # a status answer larger than this is an error, not a memory spike
MAX_HEAD = 64 * 1024  # status line and headers of one answer
_RECV = 65536
_local = threading.local()


class StatusError(Exception):
    """The status URL did not answer with JSON (network error, HTTP error, too large).
    ``status``: the HTTP status when there was an answer, else None."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class _Stale(Exception):
    """A kept connection turned out closed before any byte of the answer came."""


class _Answer:
    __slots__ = ("status", "body", "keep")

    def __init__(self, status: int, body: bytes | None, keep: bool):
        self.status, self.body, self.keep = status, body, keep  # body None: larger than MAX_BODY


class _Conn:
    """One kept HTTP/1.1 connection of one thread."""

    def __init__(self, scheme: str, host: str, port: int):
        self.scheme, self.host, self.port = scheme, host, port
        self.timeout = 10.0
        self.sock: socket.socket | None = None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def _open(self) -> socket.socket:
        sock = _checked_socket(self.host, self.port, self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            sock = _tls().wrap_socket(sock, server_hostname=self.host)
        return sock

    def exchange(self, request: bytes, method: str) -> _Answer:
        """Send one request and read its answer. Raises _Stale when a reused
        connection turns out closed before any byte of the answer (the
        request is then safe to send again), OSError or StatusError else."""
        reused = self.sock is not None
        if self.sock is None:
            self.sock = self._open()
        sock = self.sock
        sock.settimeout(self.timeout)
        try:
            sock.sendall(request)
        except TimeoutError:
            raise
        except OSError as exc:
            if reused:
                raise _Stale() from exc
            raise
        try:
            return _read_answer(sock, method)
        except _Stale:
            if reused:
                raise
            raise OSError("the server closed the connection without answering") from None


def _tls() -> ssl.SSLContext:
    ctx = getattr(_local, "tls", None)
    if ctx is None:
        ctx = _local.tls = ssl.create_default_context()
    return ctx


def _read_answer(sock: socket.socket, method: str) -> _Answer:
    """The answer to one request: informational (1xx) answers skipped, the
    body framed by Content-Length, chunked transfer coding, or the end of
    the connection."""
    buf = b""
    got_any = False
    while True:
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            if len(buf) > MAX_HEAD:
                raise StatusError(f"the answer's headers are larger than {MAX_HEAD} bytes")
            try:
                chunk = sock.recv(_RECV)
            except ConnectionResetError:
                if got_any:
                    raise
                raise _Stale() from None
            if not chunk:
                if got_any:
                    raise OSError("the connection closed in the middle of the answer's headers")
                raise _Stale()
            got_any = True
            buf += chunk
            end = buf.find(b"\r\n\r\n", max(0, len(buf) - len(chunk) - 3))
        head, buf = buf[:end], buf[end + 4 :]
        lines = head.split(b"\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise StatusError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue, 103 Early Hints: the real answer follows
        break
    length = chunked = None
    keep = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise StatusError(f"a malformed header line in the answer: {line[:80]!r}")
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length is not None and int(value) != length):
                raise StatusError(f"a malformed Content-Length in the answer: {value[:40]!r}")
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = value.strip().lower().endswith(b"chunked")
            if not chunked:
                raise StatusError(f"an unsupported Transfer-Encoding in the answer: {value.strip()[:40]!r}")
        elif name == b"connection":
            tokens = value.lower()
            if b"close" in tokens:
                keep = False
            elif b"keep-alive" in tokens:
                keep = True
    if method == "HEAD" or status in (204, 304):
        return _Answer(status, b"", keep and not buf)
    if chunked:
        body, buf = _read_chunked(sock, buf)
        keep = keep and length is None  # both framings: the connection is not to be trusted again
    elif length is not None:
        if length > MAX_BODY:
            return _Answer(status, None, False)
        if len(buf) < length:
            data = bytearray(buf)  # appended in place: a large body is not copied once per read
            while len(data) < length:
                chunk = sock.recv(max(_RECV, length - len(data)))
                if not chunk:
                    raise OSError("the connection closed in the middle of the answer's body")
                data += chunk
            buf = bytes(data)
        body, buf = buf[:length], buf[length:]
    else:  # the body ends where the connection does
        data, keep = bytearray(buf), False
        while len(data) <= MAX_BODY:
            chunk = sock.recv(_RECV)
            if not chunk:
                break
            data += chunk
        if len(data) > MAX_BODY:
            return _Answer(status, None, False)
        body, buf = bytes(data), b""
    # Bytes beyond the answer, or a chunked body cut off as too large: not a connection to reuse.
    return _Answer(status, body, keep and not buf and body is not None)


def _read_chunked(sock: socket.socket, buf: bytes) -> tuple[bytes | None, bytes]:
    """A chunked body (RFC 9112 7.1) from ``buf`` and the socket; returns it
    (None when larger than MAX_BODY) and the bytes after it."""
    parts: list[bytes] = []
    size_so_far = 0
    buf = bytearray(buf)  # appended in place: a large chunk is not copied once per read

    def more(buf: bytearray) -> bytearray:
        chunk = sock.recv(_RECV)
        if not chunk:
            raise OSError("the connection closed in the middle of a chunked answer")
        buf += chunk
        return buf

    def line(buf: bytearray, missing: str) -> tuple[bytes, bytearray]:
        eol = buf.find(b"\r\n")
        while eol < 0:
            if len(buf) > MAX_HEAD:
                raise StatusError(f"a malformed chunked answer: {missing}")
            buf = more(buf)
            eol = buf.find(b"\r\n")
        return bytes(buf[:eol]), buf[eol + 2 :]

    while True:
        size_line, buf = line(buf, "no chunk size line")
        size_text = size_line.split(b";", 1)[0].strip()
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise StatusError(f"a malformed chunk size in the answer: {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        size_so_far += size
        if size_so_far > MAX_BODY:
            return None, b""
        while len(buf) < size + 2:
            buf = more(buf)
        if buf[size : size + 2] != b"\r\n":
            raise StatusError("a malformed chunked answer: a chunk is longer than its size")
        parts.append(bytes(buf[:size]))
        buf = buf[size + 2 :]
    while True:  # trailer fields, if any, end with an empty line
        trailer, buf = line(buf, "trailers without an end")
        if not trailer:
            return b"".join(parts), bytes(buf)


_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


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


def _connection(scheme: str, host: str, port: int, timeout: float) -> _Conn:
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    key = (scheme, host, port)
    conn = conns.get(key)
    if conn is None:
        conn = conns[key] = _Conn(scheme, host, port)
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
_targets: dict[str, tuple] = {}  # url -> (scheme, host, port, target, plain, GET request): asked again and again
_TARGET_OK = re.compile(r"[\x21-\x7e]+")  # what a request line carries as it is (requests quotes the rest)
_FIELD_BAD = re.compile(r"[\r\n\x00]")


def _target(url: str) -> tuple:
    known = _targets.get(url)
    if known is None:
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        plain = (
            parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and not parts.username
            and _TARGET_OK.fullmatch(target) is not None
        )
        port = get = None
        if plain:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            get = _request_bytes("GET", target, _host_header(parts.scheme, parts.hostname, port), _JSON_ONLY, None)
        known = (parts.scheme, parts.hostname, port, target, plain, get)
        if len(_targets) > 100_000:
            _targets.clear()
        _targets[url] = known
    return known


def _host_header(scheme: str, host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port == (443 if scheme == "https" else 80) else f"{shown}:{port}"


def _request_bytes(method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    for name, value in headers.items():
        if _FIELD_BAD.search(name) or _FIELD_BAD.search(value) or ":" in name:
            raise StatusError(f"the request header {name!r} holds a line break, NUL or colon")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body is not None else head


def _request(method: str, url: str, body: bytes | None, timeout: float, headers: dict[str, str] | None):
    scheme, host, port, target, plain, get = _target(url)
    headers = {**_JSON_ONLY, **headers} if headers else _JSON_ONLY
    if not plain or _proxied(scheme, host):
        return _with_requests(method, url, body, timeout, headers)
    if method == "GET" and headers is _JSON_ONLY:
        request = get
    else:
        try:
            request = _request_bytes(method, target, _host_header(scheme, host, port), headers, body)
        except UnicodeEncodeError:
            raise StatusError(f"a request header to {egress.shown(url)} is not Latin-1 text") from None
    for attempt in (1, 2):  # a kept connection the server closed meanwhile: once more on a new one
        conn = _connection(scheme, host, port, timeout)
        try:
            answer = conn.exchange(request, method)
        except egress.EgressRefused as exc:
            _forget(scheme, host, port)
            exc.url = exc.url or url
            raise
        except _Stale as exc:
            _forget(scheme, host, port)
            if attempt == 1:
                continue
            raise StatusError(f"status query to {egress.shown(url)} failed: the connection closed twice") from exc
        except StatusError as exc:
            _forget(scheme, host, port)
            raise StatusError(f"status query to {egress.shown(url)} failed: {exc}") from exc
        except (OSError, ssl.SSLError) as exc:
            _forget(scheme, host, port)
            raise StatusError(f"status query to {egress.shown(url)} failed: {exc!r}") from exc
        if not answer.keep:
            _forget(scheme, host, port)
        if 300 <= answer.status < 400:
            # Redirects: each hop checked by the requests session.
            return _with_requests(method, url, body, timeout, headers)
        return _decode(url, answer.status, answer.body)
    raise AssertionError("unreachable")


def _decode(url: str, status: int, body: bytes | None):
    if body is None or len(body) > MAX_BODY:
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
