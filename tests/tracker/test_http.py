"""tracker.http: the keep-alive status GET of the tracker's threads."""

import http.server as http_server
import json
import threading

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
