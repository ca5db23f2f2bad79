"""The execution page for sub-workflows, with-items and reverse workflows,
through Django's test client (data made through ``workflows.services``)."""

import re

import pytest
from django.contrib.auth.models import Permission, User

from ops.models import OperatorAction
from tests.tree_workflows import ITEMS_OVER_CHILDREN
from workflows import services, tree
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

pytestmark = pytest.mark.django_db

THREE_LEVELS = """
version: '2.0'
top:
  tasks:
    call_mid:
      workflow: mid
mid:
  tasks:
    call_leaf:
      workflow: leaf
leaf:
  tasks:
    wait:
      action: std.async_noop
"""

ITEMS = """
version: '2.0'
items:
  tasks:
    fan:
      with-items: i in <% range($.n) %>
      action: std.async_noop
      concurrency: 2
  input: [n]
"""


def page(client, ex_id, **params):
    r = client.get(f"/executions/{ex_id}/", params)
    assert r.status_code == 200
    return r.content.decode()


def child_of(task_name, execution_id):
    task = TaskExecution.objects.get(workflow_execution_id=execution_id, name=task_name)
    return WorkflowExecution.objects.get(task_execution_id=task.id), task


def test_a_sub_workflow_task_links_to_its_child_and_the_child_has_a_breadcrumb_to_parent_task_and_root(client):
    services.save_workflows(THREE_LEVELS)
    top = services.start_execution("top", {})
    mid, call_mid = child_of("call_mid", top.id)
    leaf, call_leaf = child_of("call_leaf", mid.id)

    html = page(client, top.id)
    assert f'<a href="/executions/{mid.id}/">{mid.id}</a>' in html
    assert 'class="breadcrumb' not in html  # a root has none

    leaf_html = page(client, leaf.id)
    crumbs = re.search(r'<nav class="breadcrumb.*?</nav>', leaf_html, re.S).group(0)
    links = re.findall(r'href="(/executions/[^"]+)"', crumbs)
    assert links == [
        f"/executions/{top.id}/",
        f"/executions/{top.id}/#task-call_mid",
        f"/executions/{mid.id}/",
        f"/executions/{mid.id}/#task-call_leaf",
    ]
    assert "root: top" in crumbs and "task call_mid" in crumbs and "task call_leaf" in crumbs
    assert [c.task.id for c in tree.lineage(leaf)] == [call_mid.id, call_leaf.id]


def test_a_with_items_task_shows_done_running_failed_of_n_from_its_counters_and_each_item(client):
    services.save_workflows(ITEMS)
    ex = services.start_execution("items", {"n": 3})
    fan = TaskExecution.objects.get(workflow_execution=ex, name="fan")
    html = page(client, ex.id)
    assert '0 done</span> · <span class="items-running">2 running</span> · ' in html
    assert "0 failed</span> of 3 items · 1 waiting" in html
    first, second = ActionExecution.objects.filter(task_execution=fan).order_by("created_at", "id")
    services.complete_action(first.id, "ERROR", "boom")

    # the live region, as live.js fetches it when the execution changes
    live = client.get(f"/executions/{ex.id}/", HTTP_X_GUST_LIVE="1").content.decode()
    assert 'class="items-done">1 done' in live and "1 failed</span> of 3 items" in live
    assert re.findall(r'<td class="num">#(\d+)</td>', live) == ["0", "1", "2"]
    # The page reads the engine's counters, not the rows (set here by hand to tell them apart).
    fan.refresh_from_db()
    counters = {**fan.runtime_context["with_items"], "count": 7, "done": 5, "errors": 2}
    TaskExecution.objects.filter(id=fan.id).update(runtime_context={**fan.runtime_context, "with_items": counters})
    assert (
        '5 done</span> · <span class="items-running">2 running</span> · <span class="items-failed">2 failed'
        "</span> of 7 items" in page(client, ex.id)
    )


def test_a_with_items_task_of_many_items_shows_one_page_of_them_and_says_so(client, django_assert_max_num_queries):
    services.save_workflows(ITEMS.replace("concurrency: 2", "concurrency: 200"))
    ex = services.start_execution("items", {"n": 120})
    fan = TaskExecution.objects.get(workflow_execution=ex, name="fan")
    with django_assert_max_num_queries(25):
        html = page(client, ex.id)
    assert f"Showing 1–50 of 120 action executions (page 1 of 3, {tree.ITEMS_PER_PAGE} a page)" in html
    assert len(re.findall(r'<td class="num">#\d+</td>', html)) == 50
    assert f'href="?items_task={fan.id}&amp;items_page=2#task-fan">next' in html
    last = page(client, ex.id, items_task=fan.id, items_page="3")
    assert "Showing 101–120 of 120" in last and "previous" in last
    assert re.findall(r'<td class="num">#(\d+)</td>', last)[-1] == "119"
    # A page number out of range, or not a number, shows a real page.
    assert "Showing 101–120" in page(client, ex.id, items_task=fan.id, items_page="99")
    assert "Showing 1–50" in page(client, ex.id, items_task=fan.id, items_page="x")


def test_a_with_items_task_over_sub_workflows_lists_each_child_with_its_index(client):
    services.save_workflows(ITEMS_OVER_CHILDREN)
    ex = services.start_execution("parent", {})
    fan = TaskExecution.objects.get(workflow_execution=ex, name="fan")
    kids = list(WorkflowExecution.objects.filter(task_execution_id=fan.id).order_by("created_at", "id"))
    html = page(client, ex.id)
    table = re.search(r'<table class="sub sub-workflows">.*?</table>', html, re.S).group(0)
    assert re.findall(r'<td class="num">#(\d+)</td>', table) == ["0", "1"]
    assert all(f'href="/executions/{k.id}/"' in table for k in kids)
    assert '0 done</span> · <span class="items-running">2 running' in html


def test_a_reverse_workflow_page_draws_requires_edges(client):
    services.save_workflows("""
version: '2.0'
rev:
  type: reverse
  tasks:
    a:
      action: std.noop
    b:
      action: std.noop
      requires: [a]
""")
    ex = services.start_execution("rev", {}, {"task_name": "b"})
    html = page(client, ex.id)
    assert html.count('class="edge edge-requires') == 1
    assert "<title>b requires a</title>" in html and "on-success</span>" not in html


def test_rerun_failed_items_from_the_page_runs_only_the_failed_item_and_is_audited(client):
    services.save_workflows(ITEMS)
    ex = services.start_execution("items", {"n": 2})
    fan = TaskExecution.objects.get(workflow_execution=ex, name="fan")
    first, second = ActionExecution.objects.filter(task_execution=fan).order_by("created_at", "id")
    services.complete_action(first.id, "SUCCESS", 1)
    services.complete_action(second.id, "ERROR", "boom")
    user = User.objects.create_user("olga")
    user.user_permissions.add(Permission.objects.get(codename="fix_tasks"))
    client.force_login(user)
    html = page(client, ex.id)
    assert html.count(f'action="/ops/tasks/{fan.id}/rerun"') == 2 and "Rerun failed items" in html
    r = client.post(f"/ops/tasks/{fan.id}/rerun", {"reset": "false"}, follow=True)
    assert "Reran task fan." in r.content.decode()
    rows = ActionExecution.objects.filter(task_execution=fan).order_by("created_at", "id")
    assert [(a.runtime_context["index"], a.state, a.accepted) for a in rows] == [
        (0, "SUCCESS", True),
        (1, "ERROR", False),
        (1, "RUNNING", False),
    ]
    assert OperatorAction.objects.get().kind == "rerun_task"
