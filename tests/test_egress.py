"""The egress policy: with the production settings, workflow HTTP, status
queries and webhooks can not reach this host's loopback services or the cloud
metadata service, whatever the URL's spelling, through a redirect or a name
that resolves to something else when connecting. The test settings allow
loopback; these tests put the production default back."""

import http.server
import runpy
import socket
import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone

from tracker.models import TrackedAction
from tracker.runner import Tracker
from webhooks import notifier
from webhooks.models import Webhook, WebhookDelivery
from workflows import egress, services
from workflows.models import ActionExecution, TaskExecution

METADATA = "http://169.254.169.254/latest/meta-data/"
METADATA_REFUSED = (
    f"Refused to call {METADATA}: address 169.254.169.254 is in the denied range 169.254.0.0/16 "
    "(GUST_EGRESS_DENIED_CIDRS; GUST_EGRESS_ALLOWED_CIDRS or GUST_EGRESS_ALLOWED_HOSTS can allow it)"
)

production_policy = override_settings(GUST={**django_settings.GUST, "EGRESS": {}})  # every key from egress.DEFAULTS


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.paths.append(self.path)
        if self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args):
        pass


def serve(address: str, port: int = 0, redirect_to: str | None = None):
    server = http.server.ThreadingHTTPServer((address, port), _Handler)
    server.paths, server.redirect_to = [], redirect_to
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return server


@pytest.fixture
def servers():
    started = []

    def start(*args, **kwargs):
        started.append(serve(*args, **kwargs))
        return started[-1]

    yield start
    for s in started:
        s.shutdown()
        s.server_close()


def run(yaml: str, name: str, django_capture_on_commit_callbacks):
    services.save_workflows(yaml)
    with django_capture_on_commit_callbacks(execute=True):  # the worker job runs inline
        ex = services.start_execution(name)
    ex.refresh_from_db()
    return ex, TaskExecution.objects.get(workflow_execution=ex)


# --- the policy itself: no database ------------------------------------------


def test_the_production_settings_deny_loopback_link_local_and_this_host(monkeypatch):
    for name in egress.ENV.values():
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(django_settings.BASE_DIR / "config" / "settings.py"))["GUST"]["EGRESS"]
    assert conf == egress.DEFAULTS
    with override_settings(GUST={**django_settings.GUST, "EGRESS": conf}):
        rules = egress.policy()
    for address in (
        "127.0.0.1",
        "127.255.0.9",
        "::1",
        "169.254.169.254",
        "fe80::1",
        "fe80::1%1",
        "0.0.0.0",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ):
        assert rules.refusal(address) is not None, address
    for address in ("93.184.216.34", "10.0.0.1", "192.168.1.1", "2001:db8::1", "::ffff:93.184.216.34"):
        assert rules.refusal(address) is None, address
    assert "address ::ffff:127.0.0.1 (IPv4 127.0.0.1) is in the denied range 127.0.0.0/8" in rules.refusal(
        "::ffff:127.0.0.1"
    )


def test_allowed_ranges_and_host_names_override_the_denied_ranges():
    with override_settings(
        GUST={
            **django_settings.GUST,
            "EGRESS": {"ALLOWED_CIDRS": "127.0.0.1/32, ::1", "ALLOWED_HOSTS": [".internal.test"]},
        }
    ):
        rules = egress.policy()
    assert rules.refusal("127.0.0.1") is None and rules.refusal("::1") is None
    assert rules.refusal("::ffff:127.0.0.1") is None  # the same address, spelt as IPv6
    assert "127.0.0.0/8" in rules.refusal("127.0.0.2")
    assert rules.allows_host("api.internal.test") and rules.allows_host("INTERNAL.test.")
    assert not rules.allows_host("evilinternal.test")


def test_a_range_that_is_not_one_is_a_configuration_error():
    with override_settings(GUST={**django_settings.GUST, "EGRESS": {"DENIED_CIDRS": ["127.0.0.0/8", "localhost"]}}):
        with pytest.raises(ImproperlyConfigured, match="GUST_EGRESS_DENIED_CIDRS.*localhost"):
            egress.policy()


# --- workflow actions ----------------------------------------------------------


@pytest.mark.django_db
@production_policy
def test_std_http_to_the_metadata_service_fails_the_task_with_the_reason(django_capture_on_commit_callbacks):
    ex, task = run(
        f"version: '2.0'\nmeta:\n  tasks:\n    steal:\n      action: std.http url={METADATA} timeout=2\n",
        "meta",
        django_capture_on_commit_callbacks,
    )
    assert ex.state == task.state == "ERROR"
    assert METADATA_REFUSED in task.state_info


@pytest.mark.django_db
@production_policy
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "2130706433", "127.1", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]"]
)
def test_loopback_is_refused_however_it_is_spelt_and_nothing_is_sent(
    host, outside_service, django_capture_on_commit_callbacks
):
    port = outside_service.server_address[1]
    ex, task = run(
        f"version: '2.0'\nlocal:\n  tasks:\n    call:\n      action: std.http url=http://{host}:{port}/admin\n",
        "local",
        django_capture_on_commit_callbacks,
    )
    assert task.state == "ERROR"
    assert f"Refused to call http://{host}:{port}/admin: " in task.state_info
    assert "is in the denied range" in task.state_info
    assert outside_service.requests == []


@pytest.mark.django_db
@override_settings(GUST={**django_settings.GUST, "EGRESS": {"ALLOWED_CIDRS": ["127.0.0.2/32"]}})
def test_a_redirect_to_a_denied_address_is_refused(servers, outside_service, django_capture_on_commit_callbacks):
    secret = f"{outside_service.url}/secret"
    redirector = servers("127.0.0.2", redirect_to=secret)
    url = f"http://127.0.0.2:{redirector.server_address[1]}/go"
    ex, task = run(
        f"version: '2.0'\nhop:\n  tasks:\n    call:\n      action: std.http url={url}\n",
        "hop",
        django_capture_on_commit_callbacks,
    )
    assert redirector.paths == ["/go"]  # the allowed address was called
    assert (
        task.state == "ERROR"
        and f"Refused to call {secret}: address 127.0.0.1 is in the denied range" in task.state_info
    )
    assert outside_service.requests == []


@pytest.mark.django_db
@production_policy
@pytest.mark.parametrize("action", ["std.mistral_http", "gust.http_job"])
def test_async_http_actions_follow_the_same_policy(action, django_capture_on_commit_callbacks):
    ex, task = run(
        f"version: '2.0'\njob:\n  tasks:\n    start:\n      action: {action} url={METADATA} timeout=2\n",
        "job",
        django_capture_on_commit_callbacks,
    )
    assert task.state == "ERROR" and METADATA_REFUSED in task.state_info


# --- what is checked: every address, and the one connected to ----------------


def fake_resolver(monkeypatch, answers: dict[str, list[list[str]]]):
    """Resolve the names in ``answers`` to one list of addresses per call (the
    last list again after that); other names resolve as usual."""
    real = socket.getaddrinfo
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        calls.append(host)
        addresses = answers[host][min(len(calls), len(answers[host])) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


@override_settings(GUST={**django_settings.GUST, "EGRESS": {"ALLOWED_CIDRS": ["127.0.0.2/32"]}})
def test_a_name_with_one_denied_address_among_its_addresses_is_refused(monkeypatch, servers):
    allowed = servers("127.0.0.2")
    fake_resolver(monkeypatch, {"mixed.test": [["127.0.0.2", "127.0.0.1"]]})
    with pytest.raises(
        egress.EgressRefused, match="mixed.test resolves to 127.0.0.1; address 127.0.0.1 is in the denied"
    ):
        egress.session().get(f"http://mixed.test:{allowed.server_address[1]}/", timeout=5)
    assert allowed.paths == []


@override_settings(GUST={**django_settings.GUST, "EGRESS": {"ALLOWED_CIDRS": ["127.0.0.2/32"]}})
def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch, servers):
    # DNS rebinding: the name resolves to an allowed address when checked and
    # to loopback right after. Both addresses listen on the same port.
    checked = servers("127.0.0.2")
    port = checked.server_address[1]
    rebound = servers("127.0.0.1", port)
    calls = fake_resolver(monkeypatch, {"rebind.test": [["127.0.0.2"], ["127.0.0.1"]]})
    assert egress.session().get(f"http://rebind.test:{port}/x", timeout=5).status_code == 200
    assert checked.paths == ["/x"] and rebound.paths == []
    assert calls == ["rebind.test"]  # resolved once: no second look-up to rebind


# --- the tracker's status queries and webhooks ---------------------------------


@pytest.mark.django_db
@production_policy
def test_a_status_url_the_policy_refuses_fails_the_action_instead_of_polling_forever():
    services.save_workflows(f"""
version: '2.0'
polled:
  tasks:
    job:
      action: gust.http_job
      input: {{url: 'http://93.184.216.34/jobs', tracking: poll, status_url: '{METADATA}'}}
""")
    ex = services.start_execution("polled")  # the job's start is not run: only the status query is
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert TrackedAction.objects.filter(action=action).exists()
    later = timezone.now() + timedelta(hours=1)
    Tracker(clock=lambda: later).run_once()
    action.refresh_from_db()
    assert action.state == "ERROR" and action.output == {"result": METADATA_REFUSED}
    assert not TrackedAction.objects.filter(action=action).exists()


@pytest.mark.django_db
@production_policy
def test_a_webhook_the_policy_refuses_is_failed_with_the_reason_at_once(outside_service):
    url = f"{outside_service.url}/hook?token=s3cret"
    Webhook.objects.create(url=url, events=["APPROVAL_CREATED"])
    ids = notifier.publish("APPROVAL_CREATED", {"approval_id": 1})
    ids += notifier.publish("APPROVAL_CREATED", {"approval_id": 2})
    notifier.deliver(ids)
    rows = WebhookDelivery.objects.order_by("id")
    assert [(r.state, r.attempts) for r in rows] == [("FAILED", 1), ("FAILED", 1)]  # not retried
    reason = f"Refused to call {outside_service.url}/hook?…: address 127.0.0.1 is in the denied range 127.0.0.0/8"
    assert all(r.last_error.startswith(reason) for r in rows)
    assert notifier.retry_due(now=timezone.now() + timedelta(days=1)) == 0
    assert outside_service.requests == []


@override_settings(GUST={**django_settings.GUST, "EGRESS": {"ALLOWED_CIDRS": ["127.0.0.2/32"]}})
def test_through_a_proxy_both_the_target_and_the_proxy_are_checked(servers, outside_service):
    proxy = servers("127.0.0.2")
    via = {"http": f"http://127.0.0.2:{proxy.server_address[1]}"}
    with pytest.raises(egress.EgressRefused, match=f"Refused to call {METADATA}: address 169.254.169.254 is in"):
        egress.session().get(METADATA, proxies=via, timeout=5)
    assert proxy.paths == []  # the proxy was not asked to go there
    with pytest.raises(egress.EgressRefused, match=f"proxy {outside_service.url}: address 127.0.0.1 is in"):
        egress.session().get("http://93.184.216.34/", proxies={"http": outside_service.url}, timeout=5)
    assert outside_service.requests == []
    with pytest.raises(egress.EgressRefused, match="SOCKS proxy"):
        egress.session().get("http://93.184.216.34/", proxies={"http": "socks5://127.0.0.2:1080"}, timeout=5)
    # An allowed target through an allowed proxy is sent to the proxy.
    via = {"http": f"http://127.0.0.2:{proxy.server_address[1]}"}
    assert egress.session().get("http://93.184.216.34/page", proxies=via, timeout=5).status_code == 200
    assert proxy.paths == ["http://93.184.216.34/page"]
