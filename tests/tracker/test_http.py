"""tracker.http: the keep-alive status GET of the tracker's threads."""

import http.server as http_server
import json
import re
import socket
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from tracker import http as tracker_http
from workflows import egress


class Counting(http_server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self):
        super().setup()
        type(self).connections += 1

    def do_GET(self):
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/job")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/big":
            body = b"[" + b"1," * (tracker_http.MAX_BODY // 2) + b"1]"
        elif self.path == "/text":
            body = b"not json"
        elif self.path == "/missing":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        else:
            body = json.dumps({"state": "RUNNING", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Counting.connections = 0
    srv = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    tracker_http.close_all()


def test_one_kept_connection_serves_many_gets(server):
    for n in range(5):
        assert tracker_http.get_json(f"{server}/job?n={n}") == {"state": "RUNNING", "path": f"/job?n={n}"}
    assert Counting.connections == 1


def test_a_connection_the_server_closed_is_replaced_once(server):
    tracker_http.get_json(f"{server}/job")
    for conn in tracker_http._local.conns.values():
        conn.sock.close()  # as if the server had dropped it while idle
        conn.sock = type(conn.sock)()  # an unconnected socket: the next send fails
    assert tracker_http.get_json(f"{server}/job")["state"] == "RUNNING"
    assert Counting.connections == 2


def test_bad_answers_are_status_errors(server):
    with pytest.raises(tracker_http.StatusError, match="HTTP 404"):
        tracker_http.get_json(f"{server}/missing")
    with pytest.raises(tracker_http.StatusError, match="not JSON"):
        tracker_http.get_json(f"{server}/text")
    with pytest.raises(tracker_http.StatusError, match="larger than"):
        tracker_http.get_json(f"{server}/big")
    with pytest.raises(tracker_http.StatusError, match="failed"):
        tracker_http.get_json("http://127.0.0.1:9/nothing-listens")


def test_a_redirect_is_followed_through_the_checked_session(server):
    assert tracker_http.get_json(f"{server}/redirect")["path"] == "/job"


def test_the_egress_policy_holds_on_the_fast_path(server):
    with override_settings(
        GUST={**django_settings.GUST, "EGRESS": {"DENIED_CIDRS": ["127.0.0.0/8"], "ALLOWED_CIDRS": []}}
    ):
        with pytest.raises(egress.EgressRefused, match="denied range 127.0.0.0/8"):
            tracker_http.get_json(f"{server}/job")
    assert Counting.connections == 0


# --- the answer's framing, against a server that sends exactly the bytes given ---


class Scripted:
    """Answers each request with the next of ``answers`` (bytes, or a list of
    byte strings sent one after another with a pause between, so that the
    client reads the answer in pieces); a None after an answer closes the
    connection once that answer is sent.
    Records each request (head and body) and each connection."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    for piece in answer if isinstance(answer, list) else [answer]:
                        conn.sendall(piece)
                        time.sleep(0.01)
                    if self.answers and self.answers[0] is None:
                        self.answers.pop(0)
                        break

    @staticmethod
    def _read_request(conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: *(\d+)", head)
        while length and len(body) < int(length.group(1)):
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self):
        self.sock.close()


@pytest.fixture
def scripted():
    made = []

    def make(*answers):
        s = Scripted(answers)
        made.append(s)
        return s

    yield make
    tracker_http.close_all()
    for s in made:
        s.close()


def ok(body: bytes, *headers: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def test_the_request_is_a_plain_http11_get_with_host_and_accept(scripted):
    s = scripted(ok(b'{"state": "RUNNING"}'))
    assert tracker_http.get_json(f"{s.url}/jobs/1?x=y") == {"state": "RUNNING"}
    head = s.requests[0].decode()
    assert head.startswith("GET /jobs/1?x=y HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{s.url.rsplit(':', 1)[1]}\r\n" in head
    assert "Accept: application/json\r\n" in head


def test_a_body_in_pieces_and_a_chunked_body_with_trailers(scripted):
    chunked = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b'5;ext=1\r\n{"sta\r\n',
        b'e\r\nte": "SUCCESS"\r\n1\r\n}\r\n0\r\nX-Trailer: 1\r\n',
        b"\r\n",
    ]
    s = scripted([b"HTTP/1.1 200 OK\r\nContent-Le", b'ngth: 17\r\n\r\n{"state": ', b'"DONE"}'], chunked, ok(b"[1]"))
    assert tracker_http.get_json(f"{s.url}/a") == {"state": "DONE"}
    assert tracker_http.get_json(f"{s.url}/b") == {"state": "SUCCESS"}
    assert tracker_http.get_json(f"{s.url}/c") == [1]
    assert s.connections == 1  # all three on the kept connection


def test_informational_answers_are_skipped(scripted):
    s = scripted(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"))
    assert tracker_http.get_json(f"{s.url}/a") == {}


def test_connection_close_http10_and_a_body_to_the_end_are_not_reused(scripted):
    s = scripted(ok(b"[1]", b"Connection: close"))
    assert tracker_http.get_json(f"{s.url}/a") == [1]
    assert not tracker_http._local.conns  # forgotten: the server said close

    s2 = scripted(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n[2]", None)
    assert tracker_http.get_json(f"{s2.url}/a") == [2]  # no length: read until the server closed
    assert not tracker_http._local.conns


def test_a_reused_connection_closed_by_the_server_is_replaced_once(scripted):
    s = scripted(ok(b"[1]"), None, ok(b"[2]"))  # closed after the first answer, without saying so
    assert tracker_http.get_json(f"{s.url}/a") == [1]
    time.sleep(0.05)
    assert tracker_http.get_json(f"{s.url}/b") == [2]  # the kept connection was closed: a new one
    assert s.connections == 2


def test_malformed_answers_are_status_errors_and_the_connection_is_dropped(scripted):
    s = scripted(
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[1]",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (tracker_http.MAX_BODY + 1),
    )
    for match in (
        "not an HTTP/1.x answer",
        "malformed Content-Length",
        "unsupported Transfer-Encoding",
        "malformed chunk size",
        "larger than",
    ):
        with pytest.raises(tracker_http.StatusError, match=match):
            tracker_http.get_json(f"{s.url}/a")
        assert not tracker_http._local.conns
    assert s.connections == 5


def test_a_read_only_post_sends_its_body_and_extra_headers(scripted):
    s = scripted(ok(b'{"jobs": {}}'))
    assert tracker_http.post_json(f"{s.url}/batch", {"ids": [1, 2]}, headers={"X-Auth-Token": "t"}) == {"jobs": {}}
    head, _, body = s.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /batch HTTP/1.1\r\n")
    assert b"X-Auth-Token: t\r\n" in head and b"Content-Type: application/json\r\n" in head
    assert json.loads(body) == {"ids": [1, 2]}


def test_a_header_that_would_split_the_request_is_refused(scripted):
    s = scripted(ok(b"{}"))
    with pytest.raises(tracker_http.StatusError, match="line break"):
        tracker_http.get_json(f"{s.url}/a", headers={"X-Auth-Token": "t\r\nX-Evil: 1"})
    assert s.requests == []


def test_https_status_urls_are_read_over_tls(tmp_path, monkeypatch):
    """The same client over TLS: the server's certificate is checked (here
    against a throwaway CA file), then the answer is framed as over TCP."""
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    srv = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Counting)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    srv.socket = server_ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    Counting.connections = 0
    trusted = ssl.create_default_context(cafile=str(cert))
    monkeypatch.setattr(tracker_http, "_tls", lambda: trusted)
    url = f"https://127.0.0.1:{srv.server_address[1]}"
    try:
        assert tracker_http.get_json(f"{url}/job?n=1") == {"state": "RUNNING", "path": "/job?n=1"}
        assert tracker_http.get_json(f"{url}/job?n=2")["path"] == "/job?n=2"
        assert Counting.connections == 1  # kept alive over TLS too
        tracker_http.close_all()
        monkeypatch.setattr(tracker_http, "_tls", ssl.create_default_context)  # the system's CAs: not this one
        with pytest.raises(tracker_http.StatusError, match="CERTIFICATE_VERIFY_FAILED"):
            tracker_http.get_json(f"{url}/job")
    finally:
        srv.shutdown()
        srv.server_close()
        tracker_http.close_all()


def test_large_bodies_arrive_whole_in_both_framings(scripted):
    big = json.dumps({"output": "x" * 3_000_000}).encode()
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(big), big)
    s = scripted(ok(big), chunked)
    assert len(tracker_http.get_json(f"{s.url}/a")["output"]) == 3_000_000
    assert len(tracker_http.get_json(f"{s.url}/b")["output"]) == 3_000_000
    assert s.connections == 1
