"""The only writer of workflows and executions.

Every change of state goes through one function here: it opens one
transaction, locks the workflow execution row, builds a snapshot, asks the
pure engine, stores the decision, and registers side effects (trace lines,
worker jobs) with ``transaction.on_commit`` so nothing happens for a change
that rolled back. Callers are the REST API, the dashboard, the worker and
(later) the tracker; none of them writes rows itself.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Subquery
from django.utils import timezone

from core import actions, adhoc, engine
from core.lang import spec as lang
from core.states import TERMINAL, State
from workflows import books, conf, notify, plainsql, queue, signals, trace
from workflows.errors import Conflict, DuplicateWorkflow, InvalidDefinition, InvalidInput, NotFound
from workflows.models import (
    HANDED_OVER,
    ActionExecution,
    CronTrigger,
    TaskExecution,
    Timer,
    WorkflowDefinition,
    WorkflowExecution,
)
from workflows.rows import async_deadline, checked_json, lock_execution

logger = logging.getLogger("gust.services")

# --- workflow definitions ----------------------------------------------------


def parse_or_raise(text: str) -> dict[str, lang.WorkflowSpec]:
    try:
        return lang.parse_definition(text, conf.limits())
    except lang.DefinitionError as exc:
        raise InvalidDefinition(exc.message, exc.as_list()) from exc


def validate_definition(text: str) -> tuple[bool, str | None, list[dict]]:
    """(valid, error message, errors with paths); never raises for bad input."""
    try:
        lang.parse_definition(text, conf.limits())
    except lang.DefinitionError as exc:
        return False, exc.message, exc.as_list()
    return True, None, []


@transaction.atomic
def save_workflows(text: str, namespace: str = "", *, update: bool = False) -> list[WorkflowDefinition]:
    """Create (or, with ``update``, create-or-replace) every workflow in ``text``.

    Raises InvalidDefinition before touching the database, and DuplicateWorkflow (a Conflict) when
    creating a name that exists; either way nothing is stored.
    """
    specs = parse_or_raise(text)
    single = len(specs) == 1
    saved = []
    for name, spec in specs.items():
        definition = text if single else lang.workflow_text(name, spec.raw)
        fields = dict(
            definition=definition,
            spec=spec.raw,
            checksum=lang.checksum(definition),
            tags=list(spec.tags),
            input=spec.input_signature(),
        )
        existing = WorkflowDefinition.objects.select_for_update().filter(name=name, namespace=namespace).first()
        if existing and not update:
            raise DuplicateWorkflow(
                name,
                f"Duplicate entry for WorkflowDefinition ['name', 'namespace', 'project_id']: "
                f"{name}, {namespace}, None",
            )
        if existing:
            for k, v in fields.items():
                setattr(existing, k, v)
            existing.updated_at = timezone.now()
            existing.save()
            saved.append(existing)
        else:
            try:
                with transaction.atomic():
                    saved.append(WorkflowDefinition.objects.create(name=name, namespace=namespace, **fields))
            except IntegrityError as exc:  # a concurrent create of the same name
                raise DuplicateWorkflow(name, f"Duplicate entry for WorkflowDefinition: {name}") from exc
    return saved


def find_workflow(identifier: str, namespace: str = "", defer: tuple[str, ...] = ()) -> WorkflowDefinition:
    # One query for both spellings; a definition whose id matches wins over
    # one whose name does, as Mistral looks up the id first. As Mistral's
    # get_workflow_definition, an id matches in any namespace, a name only
    # in the namespace given (no fallback to the default one). ``defer``:
    # columns read only when used.
    # A plain SELECT: the ORM's compiler for this query was a fifth of a
    # POST /v2/executions (bench/README.md, "HTTP path").
    sel = _definition_select(defer)
    found = sel.fetch(
        f"{sel.q('id')} = %s OR ({sel.q('name')} = %s AND {sel.q('namespace')} = %s)",
        [identifier, identifier, namespace],
        " LIMIT 2",
    )
    wf = next((w for w in found if w.id == identifier), found[0] if found else None)
    if wf is None:
        raise NotFound("Workflow", f"{identifier}, namespace={namespace}", key="workflow_identifier")
    return wf


@functools.cache
def _definition_select(defer: tuple[str, ...]) -> plainsql.PlainSelect:
    return plainsql.PlainSelect(WorkflowDefinition, exclude=defer)


@transaction.atomic
def delete_workflow(identifier: str, namespace: str = "") -> None:
    """Raises NotFound, or InvalidInput while a cron trigger starts it (as Mistral)."""
    wf = find_workflow(identifier, namespace)
    triggers = list(CronTrigger.objects.filter(workflow_id=wf.id).values_list("id", flat=True))
    if triggers:
        raise InvalidInput(
            f"Can't delete workflow that has cron triggers associated. [workflow_identifier={identifier}, "
            f"namespace={namespace}], [cron_trigger_id(s)={', '.join(triggers)}]"
        )
    wf.delete()


# --- executions --------------------------------------------------------------

# Parsed specs, one per version of a definition: every writer (save_workflows,
# workbooks) stores the spec parsed from the text whose checksum it stores
# beside it, so id + checksum names a spec. An execution keeps that key
# (``runtime["spec_key"]``), so a thousand live executions of one workflow
# share one entry, and the cache is bounded by the definitions in use, not by
# the executions. Specs are not changed after they are built.
_SPEC_CACHE: OrderedDict[tuple[str, str, str | None], lang.WorkflowSpec] = OrderedDict()
_SPEC_CACHE_LOCK = threading.Lock()  # gunicorn's threads share it
SPEC_CACHE_SIZE = 512


def spec_key(wf: WorkflowDefinition) -> str:
    return f"{wf.id}:{wf.checksum}"


def _cached_spec(key: tuple[str, str, str | None], build: Callable[[], lang.WorkflowSpec]) -> lang.WorkflowSpec:
    with _SPEC_CACHE_LOCK:
        spec = _SPEC_CACHE.get(key)
        if spec is not None:
            _SPEC_CACHE.move_to_end(key)  # the least recently used goes first
            return spec
    spec = build()
    with _SPEC_CACHE_LOCK:
        _SPEC_CACHE[key] = spec
        if len(_SPEC_CACHE) > SPEC_CACHE_SIZE:
            _SPEC_CACHE.popitem(last=False)
    return spec


def _definition_spec(wf: WorkflowDefinition) -> lang.WorkflowSpec:
    """The spec of a stored definition (reads its deferred spec column only
    when this process has not built this version yet)."""
    return _cached_spec((spec_key(wf), wf.name, None), lambda: lang.build_workflow(wf.name, wf.spec))


def _spec_for(execution: WorkflowExecution) -> lang.WorkflowSpec:
    """The spec an execution runs; a reverse workflow's is cut to its target
    task. An execution made before spec keys existed has an entry of its own."""
    target = (execution.params or {}).get("task_name")

    def build() -> lang.WorkflowSpec:
        spec = lang.build_workflow(execution.workflow_name, execution.spec)
        return lang.for_target(spec, target) if spec.reverse else spec

    shared = (execution.runtime or {}).get("spec_key") or execution.id
    return _cached_spec((shared, execution.workflow_name, target), build)


def start_execution(
    workflow_identifier: str,
    workflow_input: dict | None = None,
    params: dict | None = None,
    description: str = "",
    namespace: str = "",
) -> WorkflowExecution:
    """Create an execution and run it as far as it goes without the outside world.

    Raises NotFound (unknown workflow) or InvalidInput (missing or unexpected
    input, an unknown environment name, an env that is not a mapping or whose
    expressions fail); in every case nothing is stored.
    """
    if workflow_input is not None and not isinstance(workflow_input, dict):
        raise InvalidInput(f"Workflow input must be a JSON object, got {type(workflow_input).__name__}")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput(f"Execution params must be a JSON object, got {type(params).__name__}")
    params = checked_json(dict(params or {}), "params")
    workflow_input = checked_json(workflow_input, "input")
    description = checked_json(description or "", "description")
    if "notify" in params and (problems := notify.check(params["notify"])):
        raise InvalidInput(f"Invalid params.notify: {'; '.join(problems)}")
    with transaction.atomic():
        # The text is not needed, and the spec only when this process has
        # not built it yet (_definition_spec reads the deferred column then).
        wf = find_workflow(workflow_identifier, namespace, defer=("definition", "spec"))
        params["namespace"] = wf.namespace  # found by id: the workflow's own
        spec = _definition_spec(wf)
        raw = spec.raw  # == wf.spec (build_workflow keeps the mapping)
        values, errors = engine.check_input(spec, workflow_input or {})
        if errors:
            raise InvalidInput(f"Invalid input [name={wf.name}, errors: {'; '.join(errors.values())}]", fields=errors)
        if spec.reverse:
            try:
                spec = lang.for_target(spec, params.get("task_name"))
            except lang.DefinitionError as exc:
                raise InvalidInput(exc.errors[0][1]) from exc
        from workflows import environments  # it writes through this module

        params = environments.resolve(params)  # a named env is copied: the execution keeps it
        execution = WorkflowExecution(
            workflow_id=wf.id,
            workflow_name=wf.name,
            workflow_namespace=wf.namespace,
            spec=raw,
            description=description or "",
            input=values,
            params=params,
            state=State.IDLE,
            # As Mistral's runtime_context wb_name: a task's action short names resolve in the workbook first.
            runtime={
                HAD_TIMERS: False,
                "spec_key": spec_key(wf),
                **({"wb_name": wf.workbook_name} if wf.workbook_name else {}),
            },
        )
        plainsql.insert_rows(WorkflowExecution, [execution])
        if spec.reverse:
            _cached_spec((spec_key(wf), wf.name, params.get("task_name")), lambda: spec)
        decision = _apply(execution, engine.Start(), fresh=True)
    # What the caller holds is the row as stored, unless work after the
    # commit (a worker job run inline, a continuation) or a sub-workflow
    # (which writes its parent through another object) changed it since.
    execution.changed_after_start = bool(decision.dispatch or decision.more or spec.calls_workflows)
    return execution


def complete_action(action_id: str, state: str, output=None) -> ActionExecution:
    """Store an action's result and move its workflow on.

    Raises NotFound for an unknown id, InvalidInput for a state other than
    SUCCESS/ERROR, and Conflict (with the current state) when the action is
    no longer RUNNING; a conflict changes nothing.
    """
    if state not in (State.SUCCESS, State.ERROR):
        raise InvalidInput(f"An action execution can be completed with SUCCESS or ERROR, not {state!r}")
    with transaction.atomic():
        if _holds_write_lock():
            # SQLite's BEGIN IMMEDIATE: nobody else writes until this commits,
            # so the action and its execution are read once, together.
            # One plain SELECT with a join: the ORM's compiler for it was a
            # quarter of an async completion (bench/README.md, "HTTP path").
            found = _ACTION_SELECT.fetch_with(_EXECUTION_SELECT, "workflow_execution", _ACTION_BY_ID, [action_id])
            if not found:
                raise NotFound("ActionExecution", action_id)
            current, execution = found[0]
            if current.workflow_execution_id is None:
                return _complete_adhoc(action_id, state, output)
            if execution is None:
                raise NotFound("WorkflowExecution", current.workflow_execution_id)
            current.workflow_execution = execution
        else:
            # Lock the action's execution in one statement, then read the
            # action under that lock: another completion may have committed
            # since any earlier read.
            owner = ActionExecution.objects.filter(id=action_id).values("workflow_execution_id")[:1]
            execution = WorkflowExecution.objects.select_for_update().defer("spec").filter(id=Subquery(owner)).first()
            current = _action_row(action_id)
            if current is None:
                raise NotFound("ActionExecution", action_id)
            if current.workflow_execution_id is None:
                return _complete_adhoc(action_id, state, output)
            if execution is None:
                raise NotFound("WorkflowExecution", current.workflow_execution_id)
        if current.state != State.RUNNING:
            return _repeat_or_conflict(current, state, output)
        store = _RowStore(execution)
        store.action_rows[current.id] = current  # read under the lock already
        _apply(execution, engine.ActionCompleted(action_id, state, output), store=store)
    return current  # _apply wrote the engine's changes into this row


_ACTION_SELECT = plainsql.PlainSelect(ActionExecution)
_EXECUTION_SELECT = plainsql.PlainSelect(WorkflowExecution, exclude=("spec",))  # read when used, as defer("spec")


_ACTION_BY_ID = f"{ActionExecution._meta.db_table}.id = %s"  # plain names: quoting them is a no-op


def _action_row(action_id: str) -> ActionExecution | None:
    found = _ACTION_SELECT.fetch(_ACTION_BY_ID, [action_id])
    return found[0] if found else None


def _holds_write_lock() -> bool:
    """The transaction in progress began with SQLite's ``BEGIN IMMEDIATE``:
    it holds the database's write lock, so what it reads can not change
    under it (PostgreSQL's row locks need a re-read after ``FOR UPDATE``)."""
    return (
        connection.vendor == "sqlite"
        and connection.settings_dict.get("OPTIONS", {}).get("transaction_mode") == "IMMEDIATE"
    )


def superseded_by(action_id: str) -> str | None:
    """The id of a later action execution of the same task (a retry or a
    rerun made a new one), or None: an older attempt's callback is then gone."""
    row = (
        ActionExecution.objects.filter(id=action_id)
        .values_list("task_execution_id", "created_at", "runtime_context")
        .first()
    )
    if row is None or row[0] is None:
        return None
    index = (row[2] or {}).get("index")  # a with-items item is superseded only by a later run of the same item
    later = (
        ActionExecution.objects.filter(task_execution_id=row[0], created_at__gte=row[1])
        .exclude(id=action_id)
        .order_by("-created_at")
        .values_list("id", "runtime_context")
    )
    return next((aid for aid, rc in later if (rc or {}).get("index") == index), None)


def _repeat_or_conflict(action: ActionExecution, state: str, output) -> ActionExecution:
    """The same result again is a no-op that answers with the stored action;
    anything else is a conflict. Neither changes a row."""
    if action.state == state and action.output == {"result": output}:
        return action
    raise Conflict(
        f"Action execution {action.id} is already {action.state}; its result can not be changed",
        action.state,
    )


def _complete_adhoc(action_id: str, state: str, output) -> ActionExecution:
    from workflows.action_runs import finished_result  # run-action's module reads through this one

    action = ActionExecution.objects.select_for_update().get(id=action_id)
    if action.state != State.RUNNING:
        return _repeat_or_conflict(action, state, output)
    action.state, output = finished_result(action, state, output)
    action.output = {"result": output}
    action.accepted = True
    action.save()
    signals.action_finished.send(sender=ActionExecution, action=action)
    return action


def record_action_info(action_id: str, info: dict, *, started: bool = False) -> None:
    """Merge what a worker learnt when starting an async action (a job id, a
    status URL) into its ``runtime_context``; ignored once it has finished.
    ``started``: the worker has handed it to the outside system, so the
    worker deadline no longer applies (a heartbeat may set a new one)."""
    with transaction.atomic():
        action = ActionExecution.objects.select_for_update().filter(id=action_id).first()
        if action is None or action.state != State.RUNNING:
            return
        action.runtime_context = {**action.runtime_context, **info}
        if started:
            now = timezone.now()
            action.runtime_context[HANDED_OVER] = now.isoformat()
            action.deadline = async_deadline(now)
        action.save(update_fields=["runtime_context", "deadline", "updated_at"])


def claim_for_worker(action_id: str) -> bool:
    """A worker is about to run this action: mark it started and give it a
    lease of WORKER_LEASE seconds, in one UPDATE. False when it is not
    RUNNING or another delivery of the same job already started it — the
    broker may hand a job out again after a worker was lost, and an action
    whose effect may have happened is never run a second time on its own."""
    now = timezone.now()
    return bool(
        ActionExecution.objects.filter(id=action_id, state=State.RUNNING, worker_started_at__isnull=True).update(
            worker_started_at=now, deadline=now + timedelta(seconds=conf.seconds("WORKER_LEASE")), updated_at=now
        )
    )


def renew_lease(action_id: str) -> bool:
    """The worker running the action is alive: move its deadline one lease on.
    False once the action is no longer RUNNING."""
    now = timezone.now()
    return bool(
        ActionExecution.objects.filter(id=action_id, state=State.RUNNING, worker_started_at__isnull=False).update(
            deadline=now + timedelta(seconds=conf.seconds("WORKER_LEASE"))
        )
    )


@dataclass(frozen=True)
class OverdueSweep:
    """What one ``fail_overdue_actions`` call did."""

    failed: int = 0  # actions ended in ERROR
    errors: int = 0  # actions whose failing raised: logged, rolled back, tried again next sweep


def fail_overdue_actions(now=None, limit: int = 100) -> OverdueSweep:
    """Nothing stays RUNNING forever: an action whose deadline passed (a worker
    that never reported — crashed, or its job was lost between commit and
    enqueue — or an async action whose heartbeats stopped) ends in ERROR with
    the reason, and its workflow moves on or fails. It is not re-sent on its
    own, since the outside effect may have happened; an operator can rerun the
    task.

    Each action is failed in its own transaction (a savepoint inside the
    caller's): one that raises is rolled back, logged and counted, and the
    sweep goes on with the next, so one bad row can not keep every later
    action RUNNING. Oldest deadline first; at most ``limit`` actions failed
    and ``limit`` errors per call. Never raises for a single action.
    """
    now = now or timezone.now()
    overdue = ActionExecution.objects.filter(state=State.RUNNING, deadline__lt=now).order_by("deadline", "id")
    failed, broken, tried = 0, 0, []
    while failed < limit and broken < limit:
        # Rows tried in this call are left out, so errors do not use up the
        # limit of actions failed, and a row that raises is not tried twice.
        chunk = list(
            overdue.exclude(id__in=tried).values_list("id", "name", "deadline", "worker_started_at", "runtime_context")[
                : limit - failed
            ]
        )
        if not chunk:
            break
        for action_id, name, deadline, started_at, runtime_context in chunk:
            tried.append(action_id)
            reason = _overdue_reason(name, deadline, started_at, runtime_context or {})
            try:
                with transaction.atomic():
                    if reason.startswith(_WORKER_LOST) and _rerun_safely(action_id):
                        continue
                    complete_action(action_id, State.ERROR, reason)
                failed += 1
            except (Conflict, NotFound):
                pass  # finished meanwhile
            except Exception:
                broken += 1
                logger.exception("overdue action %s could not be failed; the sweep goes on", action_id)
    if failed:
        logger.warning("failed %d overdue action(s)", failed)
    return OverdueSweep(failed, broken)


_WORKER_LOST = "Worker lost"


def _rerun_safely(action_id: str) -> bool:
    """A worker died while running an action of a task with ``safe-rerun:
    true``: queue it again for another worker instead of failing it, as
    Mistral re-runs such actions when their executor is lost."""
    action = ActionExecution.objects.select_for_update().filter(id=action_id, state=State.RUNNING).first()
    if action is None or action.task_execution_id is None:
        return False
    execution = WorkflowExecution.objects.defer("spec").get(id=action.workflow_execution_id)
    tspec = _spec_for(execution).tasks.get(action.task_name or "")
    if tspec is None or tspec.policies.safe_rerun is not True:
        return False
    now = timezone.now()
    action.worker_started_at = None
    action.deadline = now + timedelta(seconds=conf.seconds("WORKER_QUEUE_TIMEOUT"))
    action.save(update_fields=["worker_started_at", "deadline", "updated_at"])
    transaction.on_commit(lambda: queue.run_actions([action_id]))
    logger.warning("worker lost while running %s; safe-rerun: queued again", action_id)
    return True


def _overdue_reason(name: str, deadline, started_at, runtime_context: dict) -> str:
    at = f"{deadline:%Y-%m-%d %H:%M:%S} UTC"
    adef = actions.get(adhoc.run_name(name, runtime_context))  # an ad-hoc action: its base
    waited_for_worker = bool(adef and adef.needs_worker) and HANDED_OVER not in runtime_context
    if waited_for_worker and started_at is None:
        return f"Not started: no worker took it from the queue before {at} (GUST_WORKER_QUEUE_TIMEOUT); nothing ran"
    if waited_for_worker and started_at is not None:
        return (
            f"{_WORKER_LOST}: the worker that started it at {started_at:%Y-%m-%d %H:%M:%S} UTC stopped renewing "
            f"its lease (deadline {at}); not run again since its effect may have happened; rerun the task "
            f"if it is safe"
        )
    return f"Deadline passed at {at} without a result, callback or heartbeat; rerun the task if it is safe"


def extend_deadline(action_id: str, seconds: float) -> ActionExecution:
    """A heartbeat: the action is still being worked on. Raises NotFound, or
    Conflict when it is no longer RUNNING."""
    with transaction.atomic():
        action = ActionExecution.objects.select_for_update().filter(id=action_id).first()
        if action is None:
            raise NotFound("ActionExecution", action_id)
        if action.state != State.RUNNING:
            raise Conflict(f"Action execution {action_id} is already {action.state}", action.state)
        action.deadline = timezone.now() + timedelta(seconds=seconds)
        action.save(update_fields=["deadline", "updated_at"])
    return action


_STATE_EVENTS = {State.PAUSED: engine.Pause, State.RUNNING: engine.Resume, State.CANCELLED: engine.Cancel}


def change_execution_state(execution_id: str, state: str, reason: str | None = None) -> WorkflowExecution:
    """Pause, resume or cancel. Raises InvalidInput for other states and
    Conflict when the move does not apply (e.g. resuming a CANCELLED run).
    ``reason`` is kept in state_info when pausing or cancelling."""
    if state not in _STATE_EVENTS:
        raise InvalidInput(f"An execution can be set to PAUSED, RUNNING or CANCELLED, not {state!r}")
    event = engine.Resume() if state == State.RUNNING else _STATE_EVENTS[State(state)](reason)
    with transaction.atomic():
        execution = lock_execution(execution_id)
        _apply(execution, event)
        if state in (State.PAUSED, State.RUNNING) and _spec_for(execution).calls_workflows:
            transaction.on_commit(lambda: _cascade(execution_id, state))
    return execution


def continue_execution(execution_id: str) -> None:
    """Go on with an execution that stopped at the step limit of its last
    transaction (a worker job, see ``dispatch.continue_execution``). Nothing
    happens when it was paused, cancelled or deleted meanwhile."""
    with transaction.atomic():
        execution = WorkflowExecution.objects.select_for_update().defer("spec").filter(id=execution_id).first()
        if execution is None or execution.state != State.RUNNING:
            return
        _apply(execution, engine.Continue())


def continue_stalled(now=None, older_than: float = 30.0, limit: int = 100) -> int:
    """Nothing stays RUNNING for ever: an execution with a task still IDLE
    ``older_than`` seconds after it was stored lost its continuation job (a
    crash between commit and enqueue), since a RUNNING execution keeps IDLE
    tasks only until its next step. Continue it here (a tracker periodic
    hook). Returns how many were continued."""
    cutoff = (now or timezone.now()) - timedelta(seconds=older_than)
    stalled = list(
        TaskExecution.objects.filter(state=State.IDLE, updated_at__lt=cutoff, workflow_execution__state=State.RUNNING)
        .order_by()
        .values_list("workflow_execution_id", flat=True)
        .distinct()[:limit]
    )
    for execution_id in stalled:
        continue_execution(execution_id)
    if stalled:
        logger.warning("continued %d stalled execution(s)", len(stalled))
    return len(stalled)


def rerun_task(task_id: str, reset: bool = True) -> TaskExecution:
    """Run a failed task again (operator action). Raises NotFound, or Conflict
    when the task is not in ERROR; a failed workflow returns to RUNNING.
    ``reset=False``: a with-items task runs only its failed items again."""
    return _operator_fix(task_id, engine.RerunTask(task_id, reset))


def skip_task(task_id: str) -> TaskExecution:
    """Mark a failed task SKIPPED and follow its on-success transitions."""
    return _operator_fix(task_id, engine.SkipTask(task_id))


def _operator_fix(task_id: str, event) -> TaskExecution:
    with transaction.atomic():
        task = TaskExecution.objects.filter(id=task_id).only("workflow_execution_id").first()
        if task is None:
            raise NotFound("TaskExecution", task_id)
        _apply(lock_execution(task.workflow_execution_id), event)
    return TaskExecution.objects.get(id=task_id)


def update_execution_fields(execution_id: str, description: str | None = None) -> WorkflowExecution:
    if description is not None:
        description = checked_json(description, "description")
    with transaction.atomic():
        execution = lock_execution(execution_id)
        if description is not None:
            execution.description = description
            execution.save(update_fields=["description", "updated_at"])
    return execution


@transaction.atomic
def delete_execution(execution_id: str) -> None:
    execution = lock_execution(execution_id)
    if execution.state not in TERMINAL and execution.state != State.IDLE:
        raise Conflict(f"Execution {execution_id} is {execution.state}; cancel it before deleting it", execution.state)
    execution.delete()


# --- rows <-> engine ------------------------------------------------------------


def _action_view(a: ActionExecution, with_input: bool = True) -> engine.ActionView:
    return engine.ActionView(
        id=a.id,
        name=a.name,
        state=a.state,
        input=a.input if with_input else {},
        output=a.output,
        state_info=a.state_info,
        is_sync=a.is_sync,
        accepted=a.accepted,
        index=(a.runtime_context or {}).get("index"),
        runtime_context=a.runtime_context or {},
    )


def _child_view(child: WorkflowExecution) -> engine.ActionView:
    """A sub-workflow execution as its parent task's unit: live (RUNNING for
    the parent) until the parent took its end (``accepted`` set)."""
    return engine.ActionView(
        id=child.id,
        name=child.workflow_name,
        state=State.RUNNING if child.accepted is None else child.state,
        input=child.input,
        output={"result": child.output},
        state_info=child.state_info,
        is_sync=False,
        accepted=bool(child.accepted),
        index=(child.params or {}).get("index"),
        kind="workflow",
    )


def _task_view(row: TaskExecution, live: list) -> engine.TaskView:
    return engine.TaskView(
        id=row.id,
        name=row.name,
        state=row.state,
        seq=row.seq,
        state_info=row.state_info,
        result=row.result,
        published=row.published,
        runtime_context=row.runtime_context,
        processed=row.processed,
        started=row.started_at is not None,
        finished=row.finished_at is not None,
        in_context=row.in_context,
        actions=[_child_view(a) if isinstance(a, WorkflowExecution) else _action_view(a) for a in live],
    )


_TASK_SELECT = plainsql.PlainSelect(TaskExecution, exclude=("items",))


class _RowStore:
    """The engine's :class:`engine.Store` over one execution's rows: each
    question is one indexed query for the rows it names (and their live
    actions), so an event costs the same at the ten-thousandth task as at
    the first. Keeps the rows it read, to write back what the engine changed."""

    def __init__(self, execution: WorkflowExecution, fresh: bool = False):
        self.execution = execution
        self.fresh = fresh  # created in this transaction: it has no rows to read yet
        self.task_rows: dict[str, TaskExecution] = {}
        self.action_rows: dict[str, ActionExecution] = {}
        self.child_rows: dict[str, WorkflowExecution] = {}  # sub-workflow executions read
        self.definitions: dict[str, WorkflowDefinition] = {}  # workflow() answers, by the name asked
        self.specs: dict[str, lang.WorkflowSpec] = {}
        self.subworkflows = _spec_for(execution).calls_workflows

    def _rows(self):
        if self.fresh:
            return TaskExecution.objects.none()
        return TaskExecution.objects.filter(workflow_execution_id=self.execution.id).defer("items")

    def _views(self, rows) -> list[engine.TaskView]:
        rows = list(rows)
        # Only a RUNNING task has a live action, and only one (IDLE and
        # WAITING ones have none yet, a delayed one only finished attempts);
        # the action that completes was read already.
        known = {a.task_execution_id for a in self.action_rows.values()}
        known |= {c.task_execution_id for c in self.child_rows.values()}
        unread = [r.id for r in rows if r.id not in self.task_rows and r.state == State.RUNNING and r.id not in known]
        for r in rows:
            self.task_rows.setdefault(r.id, r)
        if unread:
            live = ActionExecution.objects.filter(task_execution_id__in=unread).exclude(state__in=list(TERMINAL))
            for a in live:
                self.action_rows.setdefault(a.id, a)
            if self.subworkflows:
                children = WorkflowExecution.objects.defer("spec").filter(
                    task_execution_id__in=unread, accepted__isnull=True
                )
                for c in children:
                    self.child_rows.setdefault(c.id, c)
        by_task: dict[str, list] = {}
        for a in [*self.action_rows.values(), *self.child_rows.values()]:
            by_task.setdefault(a.task_execution_id, []).append(a)
        return [_task_view(self.task_rows[r.id], by_task.get(r.id, [])) for r in rows]

    def _task_rows(self, where: str, params: list, order: str = "") -> list[TaskExecution]:
        """The execution's task rows (without ``items``) matching ``where``: a
        plain SELECT, each value through the converters the ORM would apply
        (the query compiler was most of a completion's SELECT cost)."""
        if self.fresh:
            return []
        return _TASK_SELECT.fetch(
            f"{_TASK_SELECT.q('workflow_execution_id')} = %s{where}", [self.execution.id, *params], order
        )

    def task(self, task_id):
        found = self._views(self._task_rows(f" AND {_TASK_SELECT.q('id')} = %s", [task_id]))
        return found[0] if found else None

    def task_of_action(self, action_id):
        action = (
            self.action_rows.get(action_id)
            or self.child_rows.get(action_id)
            or ActionExecution.objects.filter(id=action_id, workflow_execution_id=self.execution.id).first()
        )
        if action is None and self.subworkflows:
            action = WorkflowExecution.objects.defer("spec").filter(id=action_id).first()
        if action is None or action.task_execution_id is None:
            return None
        if isinstance(action, WorkflowExecution):
            self.child_rows[action.id] = action
        else:
            self.action_rows[action.id] = action
        task = self.task(action.task_execution_id)
        view = next((a for a in task.actions if a.id == action_id), None) if task else None
        return (task, view) if view else None

    def latest(self, name):
        found = self._views(
            self._task_rows(
                f" AND {_TASK_SELECT.q('name')} = %s", [name], f" ORDER BY {_TASK_SELECT.q('seq')} DESC LIMIT 1"
            )
        )
        return found[0] if found else None

    def in_states(self, states):
        states = list(states)
        if not states:
            return []
        marks = ", ".join(["%s"] * len(states))
        return self._views(
            self._task_rows(
                f" AND {_TASK_SELECT.q('state')} IN ({marks})", states, f" ORDER BY {_TASK_SELECT.q('seq')}"
            )
        )

    def unhandled_errors(self):
        return self._views(self._rows().filter(state=State.ERROR, runtime_context__error_handled=False).order_by("seq"))

    def all_tasks(self):
        return self._views(self._task_rows("", [], f" ORDER BY {_TASK_SELECT.q('seq')}"))

    def actions_of(self, task_id):
        if self.fresh:
            return []
        rows = ActionExecution.objects.filter(task_execution_id=task_id).order_by("created_at", "id")
        found = [
            _action_view(a, with_input=False)
            for a in rows.only("id", "name", "state", "output", "state_info", "is_sync", "accepted", "runtime_context")
        ]
        if self.subworkflows:
            children = WorkflowExecution.objects.filter(task_execution_id=task_id).order_by("created_at", "id")
            found += [
                _child_view(c)
                for c in children.only(
                    "id", "workflow_name", "state", "output", "state_info", "accepted", "params", "input"
                )
            ]
        return found

    def items(self, task_id):
        if self.fresh:
            return None
        return TaskExecution.objects.filter(id=task_id).values_list("items", flat=True).first()

    def descendant_tasks(self):
        """Breadth first over the children of WORKFLOW tasks, at most
        MAX_DESCENDANT_TASKS rows (a bound on what an expression reads)."""
        found: list[dict] = []
        parents = [self.execution.id]
        while parents and len(found) < MAX_DESCENDANT_TASKS:
            children = list(
                WorkflowExecution.objects.filter(
                    task_execution_id__in=TaskExecution.objects.filter(
                        workflow_execution_id__in=parents, type="WORKFLOW"
                    ).values("id")
                )
                .order_by("created_at")
                .only("id", "spec")
            )
            specs = {c.id: (c.spec or {}).get("tasks", {}) for c in children}
            rows = (
                TaskExecution.objects.filter(workflow_execution_id__in=list(specs))
                .order_by("workflow_execution_id", "seq")
                .defer("items", "in_context")[: MAX_DESCENDANT_TASKS - len(found)]
            )
            for t in rows:  # the shape task() shows, from TaskView.view()
                found.append(
                    engine.TaskView(
                        id=t.id,
                        name=t.name,
                        state=t.state,
                        seq=t.seq,
                        state_info=t.state_info,
                        result=t.result,
                        published=t.published,
                        spec=specs[t.workflow_execution_id].get(t.name, {}),
                    ).view()
                )
            parents = list(specs)
        return found

    def workflow(self, name):
        """As Mistral's resolve_workflow_definition (``books.resolve_workflow``):
        inside a workbook's workflow (the execution's ``wb_name``) its own
        ``wb.name`` first, then the name itself; each in the execution's
        namespace, then the default one."""
        if name not in self.definitions:
            try:
                found = books.resolve_workflow(
                    name, self.execution.workflow_namespace or "", (self.execution.runtime or {}).get("wb_name")
                )
            except NotFound:
                return None
            self.definitions[name] = found
            self.specs[name] = lang.build_workflow(found.name, found.spec)
        return self.specs[name]


def _snapshot_of(execution: WorkflowExecution) -> engine.Snapshot:
    return engine.Snapshot(
        root_execution_id=execution.root_execution_id,
        id=execution.id,
        workflow_name=execution.workflow_name,
        state=execution.state,
        input=execution.input,
        params=execution.params,
        context=execution.context,
        output=execution.output,
        state_info=execution.state_info,
        runtime=execution.runtime or engine.new_runtime(),
        created_at=_mistral_time(execution.created_at),
        updated_at=_mistral_time(execution.updated_at),
    )


def _mistral_time(value) -> str | None:
    """As Mistral's execution() shows times: ``2026-12-01 12:00:00``."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else None


_TASK_FIELDS = [
    "state",
    "state_info",
    "result",
    "published",
    "runtime_context",
    "in_context",
    "processed",
    "started_at",
    "finished_at",
    "updated_at",
]
_ACTION_FIELDS = ["state", "state_info", "output", "accepted", "updated_at"]
_EXECUTION_FIELDS = ["state", "state_info", "context", "output", "runtime", "updated_at"]


def _stamp(row, view, now) -> None:
    if view.started and row.started_at is None:
        row.started_at = now
    if view.finished and row.finished_at is None:
        row.finished_at = now
    elif not view.finished:
        row.finished_at = None  # a rerun task is running again


def _store_tasks(execution, decision: engine.Decision, store: _RowStore | None, now) -> None:
    new_rows = []
    specs = _spec_for(execution).tasks
    for view in decision.new_tasks:
        row = TaskExecution(
            id=view.id,
            workflow_execution_id=execution.id,
            name=view.name,
            seq=view.seq,
            type="WORKFLOW" if specs[view.name].workflow is not None else "ACTION",
            state=view.state,
            state_info=view.state_info,
            result=view.result,
            published=view.published,
            runtime_context=view.runtime_context,
            in_context=view.in_context,
            processed=view.processed,
            created_at=now,
            updated_at=now,
            items=view.items,
        )
        _stamp(row, view, now)
        new_rows.append(row)
    plainsql.insert_rows(TaskExecution, new_rows)
    changed_rows = []
    for view in decision.changed_tasks.values():
        row = store.task_rows[view.id]
        for f in ("state", "state_info", "result", "published", "runtime_context", "in_context", "processed"):
            setattr(row, f, getattr(view, f))
        row.updated_at = now
        _stamp(row, view, now)
        changed_rows.append(row)
    if changed_rows:
        plainsql.update_rows(TaskExecution, changed_rows, _TASK_FIELDS)
    for view in decision.changed_tasks.values():
        if view.items_new:  # written once per round of items, not with every change of the task
            TaskExecution.objects.filter(id=view.id).update(items=view.items)


def _store_actions(execution, decision: engine.Decision, store: _RowStore | None, now) -> None:
    dispatched = set(decision.dispatch)
    queue_deadline = now + timedelta(seconds=conf.seconds("WORKER_QUEUE_TIMEOUT"))
    waiting_deadline = async_deadline(now)

    def deadline_of(a):
        if a.id in dispatched:
            return queue_deadline  # until a worker claims it
        adef = actions.get(adhoc.run_name(a.name, a.runtime_context))
        if a.state == State.RUNNING and not a.is_sync and not (adef and adef.waits_forever):
            return waiting_deadline
        return None

    new_actions = [
        ActionExecution(
            id=a.id,
            task_execution_id=task.id,
            workflow_execution_id=execution.id,
            name=a.name,
            workflow_name=execution.workflow_name,
            task_name=task.name,
            state=a.state,
            state_info=a.state_info,
            is_sync=a.is_sync,
            accepted=a.accepted,
            input=a.input,
            output=a.output,
            created_at=now,
            updated_at=now,
            deadline=deadline_of(a),
            runtime_context=a.runtime_context if a.index is None else {**a.runtime_context, "index": a.index},
        )
        for task, a in decision.new_actions
        if a.kind == "action"
    ]
    plainsql.insert_rows(ActionExecution, new_actions)
    for row in new_actions:
        if not row.is_sync and row.state == State.RUNNING:
            signals.async_action_started.send(sender=ActionExecution, action=row)
    changed_actions = []
    for view in decision.changed_actions.values():
        if view.kind == "workflow":
            continue  # a sub-workflow's row is its own; see _after_decision
        row = store.action_rows[view.id]
        row.state, row.state_info, row.output = view.state, view.state_info, view.output
        row.accepted = view.accepted
        row.updated_at = now
        changed_actions.append(row)
    if changed_actions:
        plainsql.update_rows(ActionExecution, changed_actions, _ACTION_FIELDS)
    for row in new_actions + changed_actions:
        if row.state in TERMINAL:
            signals.action_finished.send(sender=ActionExecution, action=row)


# WorkflowExecution.runtime key: False when made, True once a Timer row was made for it.
HAD_TIMERS = "had_timers"


def _store_timers(execution, decision: engine.Decision, now) -> None:
    """The engine's timer commands, in the same transaction as the state
    they belong to; an execution that ended keeps none."""
    if execution.state in TERMINAL:
        # Only an execution that ever had a timer can have one left: the
        # others (most) end without a DELETE. One made before the mark
        # existed has no key and is treated as having had timers.
        if (execution.runtime or {}).get(HAD_TIMERS, True):
            Timer.objects.filter(execution_id=execution.id).delete()
        return
    for cmd in decision.commands:
        if isinstance(cmd, engine.CancelTimers):
            Timer.objects.filter(task_execution_id=cmd.task_id, kind__in=list(cmd.kinds)).delete()
        elif isinstance(cmd, engine.StartTimer):
            Timer.objects.filter(task_execution_id=cmd.task_id, kind=cmd.kind).delete()
            execution.runtime = {**(execution.runtime or {}), HAD_TIMERS: True}
            Timer.objects.create(
                execution_id=execution.id,
                task_execution_id=cmd.task_id,
                kind=cmd.kind,
                due_at=now + timedelta(seconds=cmd.seconds),
            )


def _apply(
    execution: WorkflowExecution, event: engine.Event, fresh: bool = False, store: _RowStore | None = None
) -> engine.Decision:
    """Ask the engine and store its decision. Must run inside a transaction
    holding the execution's row lock (``fresh``: created in it, so it has
    no rows to read)."""
    store = store or _RowStore(execution, fresh=fresh)
    before = execution.state
    snap = _snapshot_of(execution)
    try:
        decision = engine.handle(
            _spec_for(execution), snap, event, limits=conf.limits(), store=store, lookup=books.find_action
        )
    except engine.Conflict as exc:
        raise Conflict(str(exc), exc.state) from exc
    except engine.Missing as exc:
        raise NotFound(exc.kind.replace(" ", ""), exc.ident) from exc
    now = timezone.now()
    _store_tasks(execution, decision, store, now)
    _store_actions(execution, decision, store, now)

    final = decision.snapshot
    execution.state, execution.state_info = final.state, final.state_info
    execution.context, execution.output, execution.runtime = final.context, final.output, final.runtime
    _store_timers(execution, decision, now)  # before the save: it marks the runtime of an execution with timers
    execution.updated_at = timezone.now()
    plainsql.write_fields(WorkflowExecution, execution, _EXECUTION_FIELDS)

    name = execution.workflow_name
    events = decision.trace
    signals.execution_events.send(
        sender=WorkflowExecution, execution_id=execution.id, workflow_name=name, events=events, execution=execution
    )
    transaction.on_commit(lambda: trace.emit(events, name))
    if decision.dispatch:
        ids = list(decision.dispatch)
        transaction.on_commit(lambda: queue.run_actions(ids))
    if decision.more:
        # A new transaction, in a worker: the lock is free in between, so other
        # executions progress and a cancel or pause gets in.
        transaction.on_commit(lambda: queue.continue_later(execution.id))
    _after_decision(execution, decision, store, before)
    return decision


# --- sub-workflows -------------------------------------------------------------

_later = threading.local()
MAX_DESCENDANT_TASKS = 10_000


def _after_decision(execution, decision: engine.Decision, store: _RowStore, before: str) -> None:
    """What a decision asks of other executions, in the same transaction:
    start the sub-workflows it made, and tell the parent when this execution
    (a sub-workflow) ended. Done one after another by the outermost call, not
    nested, so a chain of 1,000 sub-workflows does not nest 1,000 calls."""
    jobs: list[Callable[[], None]] = []
    new_ids = {a.id for _, a in decision.new_actions}
    for cmd in decision.commands:
        if isinstance(cmd, engine.InvalidateResults):
            only = {"id__in": cmd.only} if cmd.only else {}
            ActionExecution.objects.filter(task_execution_id=cmd.task_id, accepted=True, **only).exclude(
                id__in=new_ids
            ).update(accepted=False)
            if store.subworkflows:
                WorkflowExecution.objects.filter(task_execution_id=cmd.task_id, accepted=True, **only).exclude(
                    id__in=new_ids
                ).update(accepted=False)
        elif isinstance(cmd, engine.StartWorkflow):
            jobs.append(functools.partial(_start_child, execution, store, cmd))
        elif isinstance(cmd, engine.StopWorkflow):
            # After commit, in its own transaction: the lock order stays child -> parent.
            transaction.on_commit(lambda cmd=cmd: _stop_child(cmd.child_id, cmd.reason))
    if execution.task_execution_id and before not in TERMINAL and execution.state in TERMINAL:
        jobs.append(functools.partial(_tell_parent, execution.id))
    if not jobs:
        return
    queue_ = getattr(_later, "jobs", None)
    if queue_ is not None:
        queue_.extend(jobs)
        return
    _later.jobs = jobs
    try:
        while jobs:
            jobs.pop(0)()
    finally:
        _later.jobs = None


def _start_child(parent: WorkflowExecution, store: _RowStore, cmd: engine.StartWorkflow) -> None:
    definition = store.definitions[cmd.workflow_name]
    root = parent.root_execution_id or parent.id
    child = WorkflowExecution.objects.create(
        id=cmd.child_id,
        workflow_id=definition.id,
        workflow_name=definition.name,
        workflow_namespace=definition.namespace,
        spec=definition.spec,
        description="sub-workflow execution",
        input=cmd.input,
        params={**cmd.params, "task_execution_id": cmd.task_id, "root_execution_id": root},
        task_execution_id=cmd.task_id,
        root_execution_id=root,
        state=State.IDLE,
        runtime={
            **engine.new_runtime(),
            HAD_TIMERS: False,
            "spec_key": spec_key(definition),
            "depth": int((parent.runtime or {}).get("depth", 0)) + 1,
            **({"wb_name": definition.workbook_name} if definition.workbook_name else {}),
        },
    )
    _apply(child, engine.Start(), fresh=True)


def _tell_parent(child_id: str) -> None:
    """Mistral's _send_result_to_parent_workflow: the parent task's unit
    ends with the child's output (SUCCESS), its state_info (ERROR), or is
    cancelled; once, as ``accepted`` records."""
    child = WorkflowExecution.objects.defer("spec").filter(id=child_id).first()
    if child is None or child.accepted is not None or child.state not in TERMINAL:
        return
    task = TaskExecution.objects.filter(id=child.task_execution_id).only("workflow_execution_id").first()
    if task is not None:
        parent = lock_execution(task.workflow_execution_id)
        info = child.state_info
        if child.state == State.ERROR:
            info = info or f"Failed subworkflow [execution_id={child.id}]"
        elif child.state == State.CANCELLED:
            info = info or f"Cancelled subworkflow [execution_id={child.id}]"
        store = _RowStore(parent)
        store.child_rows[child.id] = child
        try:
            _apply(parent, engine.ActionCompleted(child.id, child.state, child.output, info), store=store)
        except (Conflict, NotFound):
            pass  # the parent no longer waits for it (it ended, or the task timed out)
    WorkflowExecution.objects.filter(id=child.id).update(accepted=True)


def _stop_child(child_id: str, reason: str) -> None:
    with transaction.atomic():
        child = WorkflowExecution.objects.select_for_update().defer("spec").filter(id=child_id).first()
        if child is None:
            return
        WorkflowExecution.objects.filter(id=child.id).update(accepted=True)
        child.accepted = True
        if child.state not in TERMINAL:
            _apply(child, engine.Cancel(reason))


def _cascade(execution_id: str, state: str) -> None:
    """Pause and resume go down to the sub-workflows that run for the
    execution's tasks (each in its own transaction, after this one)."""
    running = TaskExecution.objects.filter(workflow_execution_id=execution_id, state=State.RUNNING).values("id")
    wanted = State.RUNNING if state == State.PAUSED else State.PAUSED
    for child_id in WorkflowExecution.objects.filter(
        task_execution_id__in=running, accepted__isnull=True, state=wanted
    ).values_list("id", flat=True):
        try:
            change_execution_state(child_id, state)
        except Conflict:
            pass


# --- timers --------------------------------------------------------------------


def fire_due_timers(now=None, limit: int = 200) -> int:
    """Send ``TimerFired`` for each due timer, oldest first, each in its own
    transaction with the timer row deleted in it: two processes never fire
    one twice (PostgreSQL skips rows another claimed; SQLite has one writer),
    a crash before commit leaves it due. Returns how many fired."""
    now = now or timezone.now()
    fired = 0
    due = list(Timer.objects.filter(due_at__lte=now).order_by("due_at", "id").values_list("id", flat=True)[:limit])
    for timer_id in due:
        try:
            with transaction.atomic():
                timer = _claim_timer(timer_id)
                if timer is None:
                    continue  # another process fired it
                execution = (
                    WorkflowExecution.objects.select_for_update().defer("spec").filter(id=timer.execution_id).first()
                )
                timer.delete()
                if execution is not None and execution.state not in TERMINAL:
                    _apply(execution, engine.TimerFired(timer.task_execution_id, timer.kind))
                fired += 1
        except Exception:
            logger.exception("timer %s could not be fired; it stays due", timer_id)
    return fired


def _claim_timer(timer_id: int) -> Timer | None:
    rows = Timer.objects.filter(id=timer_id)
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True)
    return rows.first()


def next_timer_in(now=None, most: float = 1.0) -> float:
    """Seconds until the next timer is due, at most ``most``."""
    nxt = Timer.objects.order_by("due_at").values_list("due_at", flat=True).first()
    if nxt is None:
        return most
    return max(0.0, min(most, (nxt - (now or timezone.now())).total_seconds()))
