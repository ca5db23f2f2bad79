"""The web dashboard, driven through Django's test client. Data is made only
through ``workflows.services``, as the API and the dashboard make it."""

import re
import urllib.parse

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from core.states import State
from ops.models import OperatorAction
from workflows import live, page_parts, services
from workflows.models import WorkflowDefinition, WorkflowExecution

pytestmark = pytest.mark.django_db

WAIT = """
version: '2.0'
waiter:
  description: Stays RUNNING until its async action is completed.
  tags: [slow]
  input:
    - who
    - count: 3
  tasks:
    prepare:
      action: std.echo output=<% $.who %>
      publish:
        prepared: <% task().result %>
      on-success: [wait_here]
    wait_here:
      action: std.async_noop
      on-success: [after]
    after:
      action: std.noop
"""

QUICK = """
version: '2.0'
quick:
  tasks:
    only:
      action: std.echo output="done"
"""


@pytest.fixture
def workflows():
    services.save_workflows(WAIT)
    services.save_workflows(QUICK)


def running(**extra):
    return services.start_execution("waiter", {"who": "alice", **extra})


def finished():
    return services.start_execution("quick", {})


@pytest.fixture
def operator(client):
    """The test client, logged in as a user allowed to pause, resume and cancel."""
    user = User.objects.create_user("olga")
    user.user_permissions.add(Permission.objects.get(codename="operate_executions"))
    client.force_login(user)
    return client


def ids_in(response) -> set[str]:
    html = response if isinstance(response, str) else response.content.decode()
    return set(re.findall(r'href="/executions/([0-9a-f-]{36})/"', html))


# --- executions list -----------------------------------------------------------


def test_list_shows_every_execution_with_state_badges(client, workflows):
    a, b = running(), finished()
    assert (a.state, b.state) == (State.RUNNING, State.SUCCESS)
    r = client.get("/")
    assert r.status_code == 200
    assert ids_in(r) == {a.id, b.id}
    html = r.content.decode()
    assert 'class="badge badge-running"' in html and 'class="badge badge-success"' in html
    # Every state is offered in the filter.
    for state in State:
        assert f'<option value="{state.value}"' in html


def test_list_filters_by_state(client, workflows):
    a1, a2, done = running(), running(), finished()
    assert ids_in(client.get("/", {"state": "RUNNING"})) == {a1.id, a2.id}
    assert ids_in(client.get("/", {"state": "SUCCESS"})) == {done.id}
    assert ids_in(client.get("/", {"state": "PAUSED"})) == set()
    # An unknown state is ignored rather than an error.
    assert ids_in(client.get("/", {"state": "BOGUS"})) == {a1.id, a2.id, done.id}


def test_list_search_matches_workflow_name_and_id(client, workflows):
    a, done = running(), finished()
    assert ids_in(client.get("/", {"q": "wait"})) == {a.id}
    assert ids_in(client.get("/", {"q": "QUICK"})) == {done.id}  # case-insensitive
    assert ids_in(client.get("/", {"q": done.id[:8]})) == {done.id}  # id prefix
    assert ids_in(client.get("/", {"q": a.id[9:20]})) == {a.id}  # id substring
    assert ids_in(client.get("/", {"q": "nothing-like-this"})) == set()
    assert ids_in(client.get("/", {"q": "waiter", "state": "SUCCESS"})) == set()


def test_list_paginates_by_25_and_keeps_filters_in_page_links(client, workflows):
    made = [finished() for _ in range(27)]
    other = running()
    first = client.get("/", {"state": "SUCCESS"})
    second = client.get("/", {"state": "SUCCESS", "page": 2})
    assert len(ids_in(first)) == 25 and len(ids_in(second)) == 2
    assert ids_in(first) | ids_in(second) == {e.id for e in made}
    assert not ids_in(first) & ids_in(second)
    assert other.id not in ids_in(first) | ids_in(second)
    html = first.content.decode()
    assert 'href="?state=SUCCESS&amp;page=2"' in html
    assert "Page 1 of 2" in html
    # Out-of-range pages show the last page instead of failing.
    assert ids_in(client.get("/", {"state": "SUCCESS", "page": 99})) == ids_in(second)


# --- one execution ---------------------------------------------------------------


def test_execution_page_shows_tasks_states_and_graph(client, workflows):
    ex = running()
    r = client.get(f"/executions/{ex.id}/")
    assert r.status_code == 200
    html = r.content.decode()
    for name in ("prepare", "wait_here", "after"):
        assert name in html
    tasks = dict(re.findall(r"<strong>(\w+)</strong>.*?badge badge-(\w+)", html, re.S))
    assert tasks == {"prepare": "success", "wait_here": "running"}
    # Graph nodes take the state of the task's latest execution; 'after' has none yet.
    assert re.search(r'class="node state-success" data-task="prepare">\s*<title>prepare', html)
    assert re.search(r'class="node state-running" data-task="wait_here">\s*<title>wait_here', html)
    assert re.search(r'class="node state-none" data-task="after">\s*<title>after', html)
    assert "std.async_noop" in html and "&quot;prepared&quot;: &quot;alice&quot;" in html
    assert "&quot;who&quot;: &quot;alice&quot;" in html  # input, pretty printed
    # Anonymous visitors see the state but no operator buttons.
    assert 'name="state"' not in html and "Log in to operate" in html


def timeline_bars(html: str) -> list[dict]:
    """The timeline's bars in page order: kind (task/action), label, classes, left and width (per cent)."""
    rows = re.findall(
        r'<div class="tl-row tl-(task|action)" data-task="([^"]+)">\s*<div class="tl-label" title="([^"]*)">.*?'
        r'<a class="tl-bar ([^"]+)"[^>]*style="left:([\d.]+)%;width:([\d.]+)%"',
        html,
        re.S,
    )
    return [
        {"kind": k, "task": t, "label": lb, "classes": c.split(), "left": float(x), "width": float(w)}
        for k, t, lb, c, x, w in rows
    ]


def test_the_timeline_draws_each_task_and_action_and_a_running_one_up_to_now(client, workflows):
    ex = running()
    html = client.get(f"/executions/{ex.id}/").content.decode()
    bars = timeline_bars(html)
    assert [(b["kind"], b["task"], b["label"]) for b in bars] == [
        ("task", "prepare", "prepare"),
        ("action", "prepare", "std.echo"),
        ("task", "wait_here", "wait_here"),
        ("action", "wait_here", "std.async_noop"),
    ]
    by_label = {b["label"]: b for b in bars}
    assert "state-success" in by_label["prepare"]["classes"] and "tl-running" not in by_label["prepare"]["classes"]
    # Still running: drawn to the moment of the page, which is the chart's right-hand end.
    waiting = by_label["std.async_noop"]
    assert "state-running" in waiting["classes"] and "tl-running" in waiting["classes"]
    assert waiting["left"] + waiting["width"] == pytest.approx(100, abs=0.01)
    assert all(0 <= b["left"] and b["left"] + b["width"] <= 100.001 for b in bars)
    assert "so far" in html.split('id="timeline"')[0].rsplit("<h2>", 1)[1]


def test_a_finished_execution_has_a_closed_timeline(client, workflows):
    ex = finished()
    html = client.get(f"/executions/{ex.id}/").content.decode()
    bars = timeline_bars(html)
    assert bars and not any("tl-running" in b["classes"] for b in bars)
    assert all("state-success" in b["classes"] for b in bars)
    assert 'class="tl-tick"' in html and ">0</span>" in html  # the axis starts at the execution's start


def test_an_operator_sees_the_moves_that_apply(operator, workflows):
    html = operator.get(f"/executions/{running().id}/").content.decode()
    # RUNNING: pause and cancel apply, resume does not.
    assert 'value="PAUSED"' in html and 'value="CANCELLED"' in html and 'value="RUNNING"' not in html
    assert "Log in to operate" not in html


def test_finished_execution_offers_no_buttons(operator, workflows):
    html = operator.get(f"/executions/{finished().id}/").content.decode()
    assert "badge-success" in html
    assert 'name="state"' not in html


def state_url(execution_id: str) -> str:
    return reverse("ops:execution_state", args=[execution_id])


def test_pause_resume_cancel_go_through_the_service_and_the_audit_log(operator, workflows):
    ex = running()
    r = operator.post(state_url(ex.id), {"state": "PAUSED"}, follow=True)
    assert r.redirect_chain == [(f"/executions/{ex.id}/", 302)]
    assert WorkflowExecution.objects.get(id=ex.id).state == State.PAUSED
    html = r.content.decode()
    assert "Paused execution of waiter." in html
    assert 'value="RUNNING"' in html and 'value="PAUSED"' not in html  # now offers resume
    assert re.search(r'id="audit-trail".*olga.*Paused execution of waiter', html, re.S)

    operator.post(state_url(ex.id), {"state": "RUNNING"})
    assert WorkflowExecution.objects.get(id=ex.id).state == State.RUNNING
    operator.post(state_url(ex.id), {"state": "CANCELLED"})
    assert WorkflowExecution.objects.get(id=ex.id).state == State.CANCELLED
    assert list(OperatorAction.objects.order_by("at", "id").values_list("username", "kind", "execution_id")) == [
        ("olga", "pause", ex.id),
        ("olga", "resume", ex.id),
        ("olga", "cancel", ex.id),
    ]


def test_conflicting_move_shows_the_message_and_changes_nothing(operator, workflows):
    ex = running()
    before = WorkflowExecution.objects.get(id=ex.id).updated_at
    r = operator.post(state_url(ex.id), {"state": "RUNNING"}, follow=True)
    assert r.status_code == 200
    assert f"Can not resume execution {ex.id} in state RUNNING" in r.content.decode()
    after = WorkflowExecution.objects.get(id=ex.id)
    assert after.state == State.RUNNING and after.updated_at == before

    done = finished()
    r = operator.post(state_url(done.id), {"state": "CANCELLED"}, follow=True)
    assert "already SUCCESS" in r.content.decode()
    assert WorkflowExecution.objects.get(id=done.id).state == State.SUCCESS

    r = operator.post(state_url(ex.id), {"state": "SUCCESS"}, follow=True)
    assert "can be set to PAUSED, RUNNING or CANCELLED" in r.content.decode()
    assert WorkflowExecution.objects.get(id=ex.id).state == State.RUNNING
    assert OperatorAction.objects.count() == 0  # refused moves leave no audit row


def test_a_user_without_the_permission_gets_403_and_nothing_changes(client, workflows):
    ex = running()
    client.force_login(User.objects.create_user("nobody"))
    html = client.get(f"/executions/{ex.id}/").content.decode()
    assert 'name="state"' not in html  # no buttons they could not use
    r = client.post(state_url(ex.id), {"state": "PAUSED"})
    assert r.status_code == 403 and "ops.operate_executions" in r.content.decode()
    assert WorkflowExecution.objects.get(id=ex.id).state == State.RUNNING
    assert OperatorAction.objects.count() == 0


def test_an_anonymous_operator_action_goes_to_the_login_page(client, workflows):
    ex = running()
    r = client.post(state_url(ex.id), {"state": "PAUSED"})
    assert r.status_code == 302
    assert r["Location"] == f"/accounts/login/?next=/executions/{ex.id}/"
    assert WorkflowExecution.objects.get(id=ex.id).state == State.RUNNING


def test_state_change_needs_post(operator, workflows):
    ex = running()
    assert operator.get(state_url(ex.id)).status_code == 405


def test_unknown_execution_is_404(operator, workflows):
    r = operator.get("/executions/00000000-0000-0000-0000-000000000000/")
    assert r.status_code == 404
    assert "Not found" in r.content.decode()
    assert operator.post(state_url("nope"), {"state": "PAUSED"}).status_code == 404


# --- workflows -------------------------------------------------------------------


def test_workflow_list(client, workflows):
    html = client.get("/workflows/").content.decode()
    assert 'href="/workflows/waiter/"' in html and 'href="/workflows/quick/"' in html
    assert "who, count=3" in html
    assert '<span class="chip">slow</span>' in html


def test_workflow_page_has_highlighted_yaml_graph_and_start_form(client, workflows):
    ex = running()
    r = client.get("/workflows/waiter/")
    assert r.status_code == 200
    html = r.content.decode()
    assert '<div class="highlight">' in html
    assert re.search(r'<span class="nt">prepare</span>', html)  # YAML keys get Pygments classes
    assert "pygments.css" in html
    assert re.search(r'<g class="node state-none">\s*<title>wait_here', html)
    assert 'name="input__who"' in html
    assert re.search(r'name="input__count" value="3"', html)  # default prefilled as JSON
    assert not re.search(r'name="input__who" value=', html)  # required: no default
    assert 'name="description"' in html
    assert ex.id in html  # recent executions


def test_unknown_workflow_is_404(client):
    assert client.get("/workflows/missing/").status_code == 404


def test_start_without_required_input_shows_the_error_on_that_field_and_creates_nothing(client, workflows):
    r = client.post("/workflows/waiter/", {"input__who": "", "input__count": "3"})
    assert r.status_code == 400
    form = r.content.decode().split('<div class="card" id="start">')[1].split("</form>")[0]
    fields = {re.search(r'name="(\w+)"', part)[1]: part for part in form.split('<div class="field">')[1:]}
    assert "missing required input &#x27;who&#x27;" in fields["input__who"]
    assert 'aria-invalid="true"' in fields["input__who"]
    assert "missing" not in fields["input__count"]
    assert WorkflowExecution.objects.count() == 0


def test_start_parses_json_values_and_redirects_to_the_new_execution(client, workflows):
    r = client.post(
        "/workflows/waiter/",
        {"input__who": "bob the builder", "input__count": '{"n": [1, 2]}', "description": "by hand"},
    )
    assert WorkflowExecution.objects.count() == 1
    ex = WorkflowExecution.objects.get()
    assert r.status_code == 302 and r["Location"] == f"/executions/{ex.id}/"
    assert ex.input == {"who": "bob the builder", "count": {"n": [1, 2]}}
    assert ex.description == "by hand" and ex.state == State.RUNNING


def test_start_with_empty_optional_input_uses_the_default(client, workflows):
    client.post("/workflows/waiter/", {"input__who": '"7"', "input__count": ""})
    assert WorkflowExecution.objects.get().input == {"who": "7", "count": 3}


# --- upload ----------------------------------------------------------------------


def test_upload_invalid_definition_lists_every_error_with_its_path(client):
    bad = """
version: '2.0'
broken:
  tasks:
    first:
      action: std.nope
      on-success: [ghost]
    second:
      action: std.echo
      colour: blue
"""
    r = client.post("/workflows/new/", {"definition": bad})
    assert r.status_code == 400
    html = r.content.decode()
    errors = re.findall(r"<li><code>([^<]+)</code>: ([^<]+)</li>", html)
    paths = {p for p, _ in errors}
    assert "broken.tasks.second.colour" in paths  # schema pass: reported on its own
    assert WorkflowDefinition.objects.count() == 0

    r = client.post("/workflows/new/", {"definition": bad.replace("      colour: blue\n", "")})
    errors = dict(re.findall(r"<li><code>([^<]+)</code>: ([^<]+)</li>", r.content.decode()))
    assert "broken.tasks.first.action" not in errors  # an unknown action fails when it runs, as in Mistral
    assert "unknown task &#x27;ghost&#x27;" in errors["broken.tasks.first.on-success[0]"]
    assert "missing required parameter &#x27;output&#x27;" in errors["broken.tasks.second.input"]
    assert WorkflowDefinition.objects.count() == 0


def test_upload_broken_yaml_shows_the_line(client):
    r = client.post("/workflows/new/", {"definition": "version: '2.0'\nwf: [unclosed\n"})
    assert r.status_code == 400
    assert "line 3" in r.content.decode()
    assert WorkflowDefinition.objects.count() == 0


def test_upload_valid_definition_redirects_to_the_workflow(client):
    r = client.post("/workflows/new/", {"definition": QUICK}, follow=True)
    assert r.redirect_chain == [("/workflows/quick/", 302)]
    assert "Saved 1 workflow(s): quick." in r.content.decode()
    assert WorkflowDefinition.objects.filter(name="quick").count() == 1


def test_upload_duplicate_is_refused_unless_replace_is_ticked(client, workflows):
    r = client.post("/workflows/new/", {"definition": QUICK.replace('"done"', '"again"')})
    assert r.status_code == 400
    # The page names the workflow and the box to tick, not only Mistral's "Duplicate entry".
    assert (
        "Workflow quick already exists: tick “Replace workflows that already exist” to replace it."
        in r.content.decode()
    )
    assert '"done"' in WorkflowDefinition.objects.get(name="quick").definition
    r = client.post("/workflows/new/", {"definition": QUICK.replace('"done"', '"again"'), "update": "on"})
    assert r.status_code == 302
    assert '"again"' in WorkflowDefinition.objects.get(name="quick").definition


def test_pages_link_the_local_stylesheet_the_live_script_and_the_nav(client):
    html = client.get("/workflows/").content.decode()
    assert 'href="/static/gust.css"' in html and 'src="/static/live.js"' in html
    for label, href in (
        ("Executions", "/"),
        ("Workflows", "/workflows/"),
        ("Admin", "/admin/"),
        ("API docs", "/api/docs"),
        ("Approvals", "/approvals/"),
        ("Waiting", "/ops/waiting/"),
    ):
        assert re.search(rf'href="{re.escape(href)}">{label}</a>', html)
    assert "/accounts/login/?next=/workflows/" in html and "Log out" not in html


def test_the_api_schema_is_a_readable_page_that_needs_nothing_from_the_internet(client, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}
    assert client.get("/api/docs").status_code == 401  # like the schema it reads, for logged-in users
    client.force_login(User.objects.create_user("reader"))
    r = client.get("/api/docs")
    assert r.status_code == 200 and r["Content-Type"].startswith("text/html")
    html = r.content.decode()
    assert "SwaggerUIBundle" in html and '"/api/schema"' in html
    assert '"/api/schema/v2"' in html and "StandaloneLayout" in html  # /v2 a pick away in the top bar
    assert '"validatorUrl": null' in html  # Swagger UI would otherwise ask validator.swagger.io
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/static/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/api/schema", {"format": "json"})
    assert schema.status_code == 200 and "/api/approvals/" in schema.json()["paths"]


def test_browsers_find_the_favicon_linked_and_at_favicon_ico(client, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}  # even before logging in: the login page asks for it too
    html = client.get("/accounts/login/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    for url in ("/favicon.ico", "/static/favicon.svg"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r["Content-Type"] == "image/svg+xml"
        assert b"".join(r.streaming_content if r.streaming else [r.content]).lstrip().startswith(b"<svg")


# --- live updates ------------------------------------------------------------------


def test_live_requests_get_only_the_region(client, workflows):
    ex = running()
    html = client.get(f"/executions/{ex.id}/", headers={"X-Gust-Live": "1"}).content.decode()
    assert "<html" not in html and 'id="execution-state"' in html and "wait_here" in html
    page = client.get(f"/executions/{ex.id}/").content.decode()
    since = urllib.parse.quote(live.execution_fingerprint(ex.id))
    assert "<html" in page and f'data-live-events="/executions/{ex.id}/events?since={since}"' in page
    rows = client.get("/", {"state": "RUNNING"}, headers={"X-Gust-Live": "1"}).content.decode()
    assert "<html" not in rows and ids_in(rows) == {ex.id}


@pytest.fixture
def quick_streams(settings):
    settings.GUST = {**settings.GUST, "LIVE_TICK": 0.01, "LIVE_STREAM_SECONDS": 0.3, "LIVE_KEEPALIVE": 0.1}


def read_all(response) -> str:
    return "".join(chunk.decode() for chunk in response.streaming_content)


def test_the_stream_says_change_only_when_the_execution_changed(client, workflows, quick_streams):
    ex = running()
    now = live.execution_fingerprint(ex.id)
    r = client.get(f"/executions/{ex.id}/events", {"since": now})
    assert r["Content-Type"] == "text/event-stream" and r["Cache-Control"] == "no-cache"
    quiet = read_all(r)
    assert quiet.startswith("retry: 500") and "event: change" not in quiet and ": keep-alive" in quiet

    stream = iter(client.get(f"/executions/{ex.id}/events", {"since": now}).streaming_content)
    assert next(stream).startswith(b"retry:")
    services.change_execution_state(ex.id, State.PAUSED)
    event = next(stream).decode()
    assert event.startswith("id: ") and "event: change" in event
    assert live.execution_fingerprint(ex.id) in event and now not in event
    list(stream)
    assert live.open_streams() == 0  # the slot is given back when the stream ends


def test_a_reconnect_with_an_old_fingerprint_is_told_at_once(client, workflows, quick_streams):
    ex = running()
    r = client.get(f"/executions/{ex.id}/events", headers={"Last-Event-ID": "stale"})
    assert "event: change" in read_all(r)


def test_the_list_stream_notices_a_new_execution(client, workflows, quick_streams):
    before = live.list_fingerprint()
    finished()
    assert before != live.list_fingerprint()
    assert "event: change" in read_all(client.get("/executions/events", {"since": before}))


def test_too_many_streams_answer_busy_and_a_gone_execution_says_so(client, workflows, quick_streams, settings):
    ex = finished()
    settings.GUST = {**settings.GUST, "LIVE_MAX_STREAMS": 0}
    assert "event: busy" in read_all(client.get(f"/executions/{ex.id}/events"))
    settings.GUST = {**settings.GUST, "LIVE_MAX_STREAMS": 2}
    services.delete_execution(ex.id)
    assert "event: gone" in read_all(client.get(f"/executions/{ex.id}/events"))
    assert live.open_streams() == 0


# --- the operator console's parts of the page (workflows.page_parts) ---


def test_the_operator_console_adds_its_parts_to_every_slot():
    assert page_parts.execution_page() == {slot: (f"ops/parts/{slot}.html",) for slot in page_parts.SLOTS}


def test_a_part_is_added_once_and_an_unknown_slot_is_refused():
    page_parts.add("task", "ops/parts/task.html")
    assert page_parts.execution_page()["task"] == ("ops/parts/task.html",)
    with pytest.raises(ValueError, match="No slot 'sidebar' on the execution page; the slots are execution, task"):
        page_parts.add("sidebar", "x.html")


def test_without_the_parts_the_page_shows_the_execution_and_no_operator_buttons(operator, workflows, monkeypatch):
    ex = running()
    with_parts = operator.get(f"/executions/{ex.id}/").content.decode()
    assert 'value="PAUSED"' in with_parts and "Operator actions" in with_parts
    monkeypatch.setattr(page_parts, "_parts", {slot: [] for slot in page_parts.SLOTS})
    html = operator.get(f"/executions/{ex.id}/").content.decode()
    assert ex.id in html and "waiter" in html
    assert 'name="state"' not in html and "Operator actions" not in html
