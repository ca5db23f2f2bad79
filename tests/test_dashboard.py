"""The web dashboard, driven through Django's test client. Data is made only
through ``workflows.services``, as the API and the dashboard make it."""

import re

import pytest
from django.urls import reverse

from workflows import services
from workflows.models import WorkflowDefinition, WorkflowExecution
from workflows.states import State

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


def ids_in(response) -> set[str]:
    return set(re.findall(r'href="/executions/([0-9a-f-]{36})/"', response.content.decode()))


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
    assert re.search(r'class="node state-success">\s*<title>prepare', html)
    assert re.search(r'class="node state-running">\s*<title>wait_here', html)
    assert re.search(r'class="node state-none">\s*<title>after', html)
    assert "std.async_noop" in html and "&quot;prepared&quot;: &quot;alice&quot;" in html
    assert "&quot;who&quot;: &quot;alice&quot;" in html  # input, pretty printed
    # RUNNING: pause and cancel apply, resume does not.
    assert 'value="PAUSED"' in html and 'value="CANCELLED"' in html and 'value="RUNNING"' not in html


def test_finished_execution_offers_no_buttons(client, workflows):
    html = client.get(f"/executions/{finished().id}/").content.decode()
    assert "badge-success" in html
    assert 'name="state"' not in html


def test_pause_resume_cancel_go_through_the_service(client, workflows):
    ex = running()
    url = reverse("dashboard:execution_state", args=[ex.id])
    r = client.post(url, {"state": "PAUSED"}, follow=True)
    assert r.redirect_chain == [(f"/executions/{ex.id}/", 302)]
    assert WorkflowExecution.objects.get(id=ex.id).state == State.PAUSED
    html = r.content.decode()
    assert "Execution paused." in html
    assert 'value="RUNNING"' in html and 'value="PAUSED"' not in html  # now offers resume

    client.post(url, {"state": "RUNNING"})
    assert WorkflowExecution.objects.get(id=ex.id).state == State.RUNNING
    client.post(url, {"state": "CANCELLED"})
    assert WorkflowExecution.objects.get(id=ex.id).state == State.CANCELLED


def test_conflicting_move_shows_the_message_and_changes_nothing(client, workflows):
    ex = running()
    before = WorkflowExecution.objects.get(id=ex.id).updated_at
    r = client.post(reverse("dashboard:execution_state", args=[ex.id]), {"state": "RUNNING"}, follow=True)
    assert r.status_code == 200
    assert f"Can not resume execution {ex.id} in state RUNNING" in r.content.decode()
    after = WorkflowExecution.objects.get(id=ex.id)
    assert after.state == State.RUNNING and after.updated_at == before

    done = finished()
    r = client.post(reverse("dashboard:execution_state", args=[done.id]), {"state": "CANCELLED"}, follow=True)
    assert "already SUCCESS" in r.content.decode()
    assert WorkflowExecution.objects.get(id=done.id).state == State.SUCCESS

    r = client.post(reverse("dashboard:execution_state", args=[ex.id]), {"state": "SUCCESS"}, follow=True)
    assert "can be set to PAUSED, RUNNING or CANCELLED" in r.content.decode()
    assert WorkflowExecution.objects.get(id=ex.id).state == State.RUNNING


def test_state_change_needs_post(client, workflows):
    ex = running()
    assert client.get(reverse("dashboard:execution_state", args=[ex.id])).status_code == 405


def test_unknown_execution_is_404(client, workflows):
    r = client.get("/executions/00000000-0000-0000-0000-000000000000/")
    assert r.status_code == 404
    assert "Not found" in r.content.decode()
    assert client.post("/executions/nope/state", {"state": "PAUSED"}).status_code == 404


# --- workflows -------------------------------------------------------------------


def test_workflow_list(client, workflows):
    html = client.get("/workflows/").content.decode()
    assert 'href="/workflows/waiter/"' in html and 'href="/workflows/quick/"' in html
    assert 'who, count=3' in html
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


def test_start_without_required_input_shows_error_and_creates_nothing(client, workflows):
    r = client.post("/workflows/waiter/", {"input__who": "", "input__count": "3"})
    assert r.status_code == 400
    assert "missing required input &#x27;who&#x27;" in r.content.decode()
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
    assert "unknown action &#x27;std.nope&#x27;" in errors["broken.tasks.first.action"]
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
    assert r.status_code == 400 and "Duplicate entry" in r.content.decode()
    assert '"done"' in WorkflowDefinition.objects.get(name="quick").definition
    r = client.post("/workflows/new/", {"definition": QUICK.replace('"done"', '"again"'), "update": "on"})
    assert r.status_code == 302
    assert '"again"' in WorkflowDefinition.objects.get(name="quick").definition


def test_pages_link_the_local_stylesheet_and_the_nav(client):
    html = client.get("/workflows/").content.decode()
    assert 'href="/static/gust.css"' in html
    for label, href in (("Executions", "/"), ("Workflows", "/workflows/"), ("Admin", "/admin/"),
                        ("API schema", "/api/schema")):
        assert f'href="{href}">{label}</a>' in html
