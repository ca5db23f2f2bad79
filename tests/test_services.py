"""The service layer against a real database: one transaction per change,
side effects only after commit, and bad input leaves nothing behind."""

import logging

import pytest

from workflows import plainsql, services
from workflows.errors import Conflict, InvalidDefinition, InvalidInput, NotFound
from workflows.models import ActionExecution, TaskExecution, WorkflowDefinition, WorkflowExecution

pytestmark = pytest.mark.django_db

HELLO = """
version: '2.0'
hello:
  input: [name]
  output: {greeting: <% $.greeting %>, answer: <% $.answer %>}
  tasks:
    greet:
      action: std.echo output=<% 'hi ' + $.name %>
      publish: {greeting: <% task().result %>}
      on-success: [both]
    ask:
      action: std.async_noop
      publish: {answer: <% task().result %>}
      on-success: [both]
    both:
      join: all
      action: std.noop
"""


def running_action(execution, name="std.async_noop"):
    return ActionExecution.objects.get(workflow_execution=execution, name=name, state="RUNNING")


def test_an_invalid_definition_stores_nothing():
    with pytest.raises(InvalidDefinition) as exc:
        services.save_workflows(
            "version: '2.0'\nok:\n  tasks:\n    t: {action: std.noop}\nbad:\n  tasks:\n    t: {on-success: [x]}\n"
        )
    assert exc.value.errors == [{"path": "bad.tasks.t.on-success[0]", "message": "unknown task 'x'"}]
    assert WorkflowDefinition.objects.count() == 0


def test_creating_an_existing_name_is_a_conflict_and_update_replaces_it():
    services.save_workflows(HELLO)
    with pytest.raises(Conflict):
        services.save_workflows(HELLO)
    services.save_workflows(HELLO.replace("hi ", "hey "), update=True)
    wf = WorkflowDefinition.objects.get(name="hello")
    assert "hey " in wf.definition and wf.updated_at is not None


def test_missing_input_creates_no_execution():
    services.save_workflows(HELLO)
    with pytest.raises(InvalidInput, match="missing required input 'name'"):
        services.start_execution("hello", {})
    with pytest.raises(NotFound):
        services.start_execution("nope", {})
    assert WorkflowExecution.objects.count() == 0


def test_async_completion_drives_the_execution_to_success(caplog, django_capture_on_commit_callbacks):
    services.save_workflows(HELLO)
    caplog.set_level(logging.INFO, logger="gust.trace")
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("hello", {"name": "ann"})
    assert ex.state == "RUNNING"
    states = dict(TaskExecution.objects.filter(workflow_execution=ex).values_list("name", "state"))
    assert states == {"greet": "SUCCESS", "ask": "RUNNING", "both": "WAITING"}
    action = running_action(ex)
    with django_capture_on_commit_callbacks(execute=True):
        services.complete_action(action.id, "SUCCESS", {"ok": True})
    ex.refresh_from_db()
    assert ex.state == "SUCCESS"
    assert ex.output == {"greeting": "hi ann", "answer": {"ok": True}}
    task = TaskExecution.objects.get(workflow_execution=ex, name="ask")
    assert task.result == {"ok": True} and task.finished_at is not None
    lines = [r.getMessage() for r in caplog.records if r.name == "gust.trace"]
    assert lines[0] == f"[{ex.id}] The workflow event WORKFLOW_LAUNCHED for {ex.id} (workflow hello)"
    assert any("TASK_SUCCEEDED" in line and task.id in line for line in lines)
    assert lines[-1].startswith(f"[{ex.id}] The workflow event WORKFLOW_SUCCEEDED")


def test_trace_lines_wait_for_commit(caplog, django_capture_on_commit_callbacks):
    services.save_workflows(HELLO)
    caplog.set_level(logging.INFO, logger="gust.trace")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.start_execution("hello", {"name": "x"})
    assert callbacks and not [r for r in caplog.records if r.name == "gust.trace"]


def test_a_second_completion_never_makes_a_second_transition(django_capture_on_commit_callbacks):
    services.save_workflows(HELLO)
    ex = services.start_execution("hello", {"name": "x"})
    action = running_action(ex)
    services.complete_action(action.id, "SUCCESS", {"v": 1})
    again = services.complete_action(action.id, "SUCCESS", {"v": 1})
    assert again.output == {"result": {"v": 1}}
    with pytest.raises(Conflict) as exc:
        services.complete_action(action.id, "ERROR", "late")
    assert exc.value.state == "SUCCESS"
    action.refresh_from_db()
    assert action.state == "SUCCESS" and action.output == {"result": {"v": 1}}
    assert TaskExecution.objects.filter(workflow_execution=ex, name="both").count() == 1


def test_pause_resume_cancel_through_the_service():
    services.save_workflows(HELLO)
    ex = services.start_execution("hello", {"name": "x"})
    assert services.change_execution_state(ex.id, "PAUSED").state == "PAUSED"
    services.complete_action(running_action(ex).id, "SUCCESS", {})
    assert TaskExecution.objects.get(workflow_execution=ex, name="both").state == "WAITING"
    assert services.change_execution_state(ex.id, "RUNNING").state == "SUCCESS"
    ex2 = services.start_execution("hello", {"name": "y"})
    assert services.change_execution_state(ex2.id, "CANCELLED").state == "CANCELLED"
    assert running_action_count(ex2) == 0
    with pytest.raises(Conflict):
        services.change_execution_state(ex2.id, "RUNNING")
    with pytest.raises(InvalidInput):
        services.change_execution_state(ex2.id, "SUCCESS")


def running_action_count(ex):
    return ActionExecution.objects.filter(workflow_execution=ex, state="RUNNING").count()


def test_http_actions_run_in_the_worker_after_commit(outside_service, django_capture_on_commit_callbacks):
    services.save_workflows(f"""
version: '2.0'
get:
  output: {{status: <% $.status %>}}
  tasks:
    call:
      action: std.http url={outside_service.url}/job method=POST
      publish: {{status: <% task().result.status %>}}
""")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ex = services.start_execution("get")
    assert outside_service.requests == []  # nothing leaves before commit
    for cb in callbacks:
        cb()
    ex.refresh_from_db()
    assert outside_service.requests[0]["method"] == "POST"
    assert ex.state == "SUCCESS" and ex.output == {"status": 200}


def test_a_failing_http_call_fails_the_task(outside_service, django_capture_on_commit_callbacks):
    services.save_workflows(
        f"version: '2.0'\nbad:\n  tasks:\n    call:\n      action: std.http url={outside_service.url}/fail\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("bad")
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    task = TaskExecution.objects.get(workflow_execution=ex)
    assert task.state == "ERROR" and "500" in task.state_info


def test_mistral_http_sends_the_mistral_headers_and_waits(
    outside_service, django_capture_on_commit_callbacks, settings
):
    services.save_workflows(
        f"version: '2.0'\ncb:\n  tasks:\n    job:\n      action: std.mistral_http url={outside_service.url}/start\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("cb")
    action = running_action(ex, "std.mistral_http")
    headers = outside_service.requests[0]["headers"]
    assert headers["Mistral-Workflow-Name"] == "cb"
    assert headers["Mistral-Workflow-Execution-Id"] == ex.id
    assert headers["Mistral-Task-Id"] == action.task_execution_id
    assert headers["Mistral-Action-Execution-Id"] == action.id
    assert headers["Mistral-Callback-URL"] == settings.GUST["PUBLIC_URL"].rstrip("/")  # a base URL (seed 002)
    services.complete_action(action.id, "SUCCESS", {"done": 1})
    ex.refresh_from_db()
    assert ex.state == "SUCCESS"


def test_rerun_and_skip_failed_tasks_through_the_service():
    services.save_workflows("""
version: '2.0'
ops:
  tasks:
    ask:
      action: std.async_noop
      on-success: [done]
    done:
      action: std.noop
""")
    ex = services.start_execution("ops")
    services.complete_action(running_action(ex).id, "ERROR", "no")
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    task = TaskExecution.objects.get(workflow_execution=ex, name="ask")
    assert task.finished_at is not None
    rerun = services.rerun_task(task.id)
    assert rerun.state == "RUNNING" and rerun.finished_at is None
    assert ActionExecution.objects.filter(task_execution=task).count() == 2
    with pytest.raises(Conflict):
        services.skip_task(task.id)  # it is RUNNING again, not in ERROR
    services.complete_action(running_action(ex).id, "ERROR", "still no")
    assert services.skip_task(task.id).state == "SKIPPED"
    ex.refresh_from_db()
    assert ex.state == "SUCCESS"
    with pytest.raises(NotFound):
        services.rerun_task("nope")


def test_a_worker_action_lost_before_dispatch_is_failed_when_its_deadline_passes(django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    services.save_workflows(
        "version: '2.0'\nlost:\n  tasks:\n    call:\n      action: std.http url=http://127.0.0.1:9/x\n"
    )
    with django_capture_on_commit_callbacks(execute=False):  # the enqueue never happens: a crash after commit
        ex = services.start_execution("lost")
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert action.state == "RUNNING" and action.deadline is not None
    assert services.fail_overdue_actions().failed == 0  # not overdue yet
    assert services.fail_overdue_actions(now=action.deadline + timedelta(seconds=1)).failed == 1
    action.refresh_from_db()
    ex.refresh_from_db()
    assert action.state == "ERROR" and "Not started: no worker took it" in action.output["result"]
    assert ex.state == "ERROR" and "Not started" in ex.state_info
    assert services.fail_overdue_actions(now=timezone.now() + timedelta(days=1)).failed == 0


def test_an_async_action_handed_over_waits_until_its_async_deadline_or_heartbeats_stop(
    outside_service, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    services.save_workflows(
        f"version: '2.0'\nm:\n  tasks:\n    j:\n      action: std.mistral_http url={outside_service.url}/go\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("m")
    action = ActionExecution.objects.get(workflow_execution=ex)
    # handed to the outside system: it waits ASYNC_ACTION_TIMEOUT (7 days by default), not the worker's lease
    assert action.deadline - timezone.now() > timedelta(days=6)
    assert services.fail_overdue_actions(now=timezone.now() + timedelta(days=6)).failed == 0
    services.extend_deadline(action.id, 60)
    assert services.fail_overdue_actions(now=timezone.now() + timedelta(seconds=61)).failed == 1
    action.refresh_from_db()
    assert "without a result, callback or heartbeat" in action.state_info


def test_the_engines_plain_insert_stores_what_bulk_create_stores():
    """plainsql.insert_rows replaces bulk_create for new task and action
    rows: every field reads back the same, auto_now fields included."""
    from datetime import timedelta

    from django.forms.models import model_to_dict
    from django.utils import timezone

    services.save_workflows("version: '2.0'\nw:\n  tasks:\n    t: {action: std.noop}\n")
    ex = services.start_execution("w")
    now = timezone.now()

    def rows(suffix):
        task = TaskExecution(
            id=f"task-{suffix}",
            workflow_execution_id=ex.id,
            name="t",
            seq=7,
            state="RUNNING",
            state_info="x\u00e9",
            result={"a": [1, None, "é"]},
            published={},
            runtime_context={"k": 1},
            in_context={"n": None},
            processed=True,
            items=None,
            started_at=now,
            finished_at=None,
        )
        action = ActionExecution(
            id=f"action-{suffix}",
            task_execution_id=task.id,
            workflow_execution_id=ex.id,
            name="std.noop",
            state="RUNNING",
            is_sync=False,
            accepted=True,
            input={"q": "é"},
            output=None,
            deadline=now + timedelta(seconds=5),
            runtime_context={"index": 3},
        )
        return task, action

    fast_task, fast_action = rows("fast")
    plainsql.insert_rows(TaskExecution, [fast_task])
    plainsql.insert_rows(ActionExecution, [fast_action])
    orm_task, orm_action = rows("orm")
    TaskExecution.objects.bulk_create([orm_task])
    ActionExecution.objects.bulk_create([orm_action])
    assert not fast_task._state.adding and not fast_action._state.adding
    for model, fast, orm in ((TaskExecution, fast_task, orm_task), (ActionExecution, fast_action, orm_action)):
        a, b = (model_to_dict(model.objects.get(id=r.id)) for r in (fast, orm))
        for d in (a, b):
            d.pop("id", None)
            d.pop("task_execution", None)
        assert a == b
        stored = model.objects.get(id=fast.id)
        assert stored.created_at == fast.created_at and abs(stored.created_at - now) < timedelta(seconds=60)
    assert ActionExecution.objects.get(id="action-fast").output is None  # SQL NULL, as bulk_create
    assert ActionExecution.objects.filter(id="action-fast", output__isnull=True).exists()


def test_a_plain_joined_select_reads_what_select_related_reads():
    """plainsql.PlainSelect.fetch_with (a completion's one read of its action
    and execution): every field as the ORM's select_related reads it, and no
    execution for an action that has none (run-action's)."""
    from django.forms.models import model_to_dict

    services.save_workflows(HELLO)
    ex = services.start_execution("hello", {"name": "é"})
    action = running_action(ex)
    lone = ActionExecution.objects.create(name="std.noop", state="RUNNING", input={"a": [1]})
    actions = plainsql.PlainSelect(ActionExecution)
    executions = plainsql.PlainSelect(WorkflowExecution, exclude=("spec",))
    where = f"{ActionExecution._meta.db_table}.id = %s"
    ((fast, fast_ex),) = actions.fetch_with(executions, "workflow_execution", where, [action.id])
    assert fast_ex.get_deferred_fields() == {"spec"}  # read when used, as defer("spec")
    orm = ActionExecution.objects.select_related("workflow_execution").get(id=action.id)
    assert model_to_dict(fast) == model_to_dict(orm) and fast.created_at == orm.created_at
    assert model_to_dict(fast_ex) == model_to_dict(orm.workflow_execution)
    assert fast_ex.updated_at == orm.workflow_execution.updated_at
    assert fast_ex.spec == orm.workflow_execution.spec
    assert actions.fetch_with(executions, "workflow_execution", where, [lone.id])[0][1] is None
    assert actions.fetch_with(executions, "workflow_execution", where, ["no-such-id"]) == []


def test_the_spec_cache_holds_a_definition_once_however_many_executions_run_it(monkeypatch):
    """Executions of one definition share its spec: many live executions do
    not push each other out (the cache is bounded by definitions, not runs),
    and a new version of the definition gets its own entry."""
    monkeypatch.setattr(services, "_SPEC_CACHE", type(services._SPEC_CACHE)())
    monkeypatch.setattr(services, "SPEC_CACHE_SIZE", 3)
    services.save_workflows(HELLO)
    executions = [services.start_execution("hello", {"name": str(i)}) for i in range(10)]
    for ex in executions:  # each completion looks its spec up again
        services.complete_action(running_action(ex).id, "SUCCESS", {"result": 42})
    assert len(services._SPEC_CACHE) == 1
    assert {WorkflowExecution.objects.get(id=ex.id).state for ex in executions} == {"SUCCESS"}
    services.save_workflows(HELLO.replace("hi ", "hello "), update=True)
    services.start_execution("hello", {"name": "new"})
    assert len(services._SPEC_CACHE) == 2
