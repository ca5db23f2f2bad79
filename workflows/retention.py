"""Retention: the execution expiration policy, as Mistral's
``[execution_expiration_policy]`` (mistral/services/expiration_policy.py).

Settings (``GUST["EXPIRATION"]``, each from a ``GUST_EXPIRATION_*`` variable):

- ``EVALUATION_INTERVAL`` minutes between evaluations by the tracker process
  (0: the periodic evaluation is off, Mistral's default);
- ``OLDER_THAN`` minutes: a finished execution last updated longer ago is
  deleted (0: no age limit);
- ``MAX_FINISHED_EXECUTIONS``: keep only this many finished executions, the
  most recently updated (0: no count limit);
- ``BATCH_SIZE`` executions per transaction (Mistral's 0 means "all at
  once"; here it must be 1..10,000, so each transaction holds SQLite's write
  lock briefly);
- ``IGNORED_STATES``: finished states that are never deleted (Mistral's
  ``ignored_states``);
- ``SECONDS_PER_CYCLE``: how long one tracker cycle may spend deleting
  before it goes back to polling (the rest continues in the next cycle).

As Mistral: only root executions (not a sub-workflow's) in a finished state
(SUCCESS, ERROR, CANCELLED, less the ignored ones) are candidates; the
evaluation is on when the interval is set and ``OLDER_THAN`` or
``MAX_FINISHED_EXECUTIONS`` is at least 1; expired executions go first, then
the superfluous ones. Beyond Mistral, a root is skipped while any execution
under it (``root_execution_id``) is not finished or any of its action
executions is not terminal (an action a worker still runs after a cancel).

Deleting an execution deletes its sub-workflow executions, task and action
executions and their tracking rows (``TrackedAction``: CASCADE). Approval
rows are an audit record and stay, with their action set to NULL (their
``SET_NULL``); their ``execution_id`` keeps saying which execution they were for.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.states import TERMINAL, State
from workflows import conf
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

logger = logging.getLogger("gust.retention")

FINISHED = (State.SUCCESS, State.ERROR, State.CANCELLED)  # Mistral's TERMINAL_STATES for workflows
UNFINISHED = [s for s in State if s not in FINISHED]
LIVE = [s for s in State if s not in TERMINAL]  # action executions still going
MAX_BATCH_SIZE = 10_000
# Pause after a batch, as a share of the time the batch took. On SQLite the
# batch held the one write lock the clients need, and as long again left
# their p95 1.31-1.39x higher while deleting (bench/README.md, "Retention");
# twice as long leaves the lock free two thirds of the time. PostgreSQL's
# batches lock only their own rows: 1.10x with as long again.
PAUSE_FACTOR = {"sqlite": 2.0}
DEFAULT_PAUSE_FACTOR = 1.0
MAX_PAUSE_S = 0.5
_ENV = {
    name: f"GUST_EXPIRATION_{name}"
    for name in (
        "EVALUATION_INTERVAL",
        "OLDER_THAN",
        "MAX_FINISHED_EXECUTIONS",
        "BATCH_SIZE",
        "IGNORED_STATES",
        "SECONDS_PER_CYCLE",
    )
}


@dataclass(frozen=True)
class Policy:
    evaluation_interval: float = 0.0  # minutes
    older_than: float = 0.0  # minutes
    max_finished_executions: int = 0
    batch_size: int = 100
    ignored_states: tuple[str, ...] = ()
    seconds_per_cycle: float = 1.0

    @property
    def applies(self) -> bool:
        """Something to delete by: an age or a count (Mistral: either at least 1)."""
        return self.older_than >= 1 or self.max_finished_executions >= 1

    @property
    def periodic(self) -> bool:
        return self.evaluation_interval > 0 and self.applies

    @property
    def states(self) -> list[str]:
        return [s for s in FINISHED if s not in self.ignored_states]


def policy() -> Policy:
    """The policy of ``settings.GUST["EXPIRATION"]``, read at call time;
    ImproperlyConfigured names the setting and its variable."""
    raw = dict(conf.get("EXPIRATION"))
    unknown = sorted(set(raw) - set(_ENV))
    if unknown:
        raise ImproperlyConfigured(f"GUST['EXPIRATION'] has unknown keys {unknown}; known: {sorted(_ENV)}")
    values = {
        "evaluation_interval": _number(raw, "EVALUATION_INTERVAL", float, 0.0, 0, None),
        "older_than": _number(raw, "OLDER_THAN", float, 0.0, 0, None),
        "max_finished_executions": _number(raw, "MAX_FINISHED_EXECUTIONS", int, 0, 0, None),
        "batch_size": _number(raw, "BATCH_SIZE", int, 100, 1, MAX_BATCH_SIZE),
        "ignored_states": _states(raw.get("IGNORED_STATES", ())),
        "seconds_per_cycle": _number(raw, "SECONDS_PER_CYCLE", float, 1.0, 0.01, 3600),
    }
    if 0 < values["older_than"] < 1:
        raise ImproperlyConfigured(
            f"{_name('OLDER_THAN')} is in minutes, at least 1 (or 0 for no age limit), not {values['older_than']}"
        )
    return Policy(**values)


def _name(key: str) -> str:
    return f"GUST['EXPIRATION']['{key}'] ({_ENV[key]})"


def _number(raw: dict, key: str, kind, default, low, high):
    value = raw.get(key, default)
    if value in ("", None):
        return default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < low or (high is not None and number > high) or number != number:
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ImproperlyConfigured(
            f"{_name(key)} must be {'an integer' if kind is int else 'a number'} {bounds}, not {value!r}"
        )
    return number


def _states(value) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else list(value or ())
    names = tuple(n.strip().upper() for n in names if str(n).strip())
    wrong = [n for n in names if n not in FINISHED]
    if wrong:
        raise ImproperlyConfigured(
            f"{_name('IGNORED_STATES')}: {', '.join(wrong)} is not a finished state; "
            f"the finished states are {', '.join(FINISHED)}"
        )
    return names


@checks.register()
def check_expiration_settings(app_configs=None, **kwargs):
    """Every management command (worker, run_tracker, migrate) refuses to
    start on a policy that can not be read, instead of failing each cycle."""
    try:
        policy()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="gust.E101")]
    return []


# --- what may go ---------------------------------------------------------------


def _candidates(pol: Policy):
    """Finished root executions with nothing under them still going. The
    unfinished executions and live actions are few (and ``state`` is
    indexed), so each is one uncorrelated subquery, not a lookup per
    candidate."""
    blocked_by_child = WorkflowExecution.objects.filter(state__in=UNFINISHED, root_execution_id__isnull=False)
    blocked_by_action = ActionExecution.objects.filter(state__in=LIVE, workflow_execution_id__isnull=False)
    return (
        WorkflowExecution.objects.filter(task_execution_id__isnull=True, state__in=pol.states)
        .exclude(id__in=blocked_by_child.values("root_execution_id"))
        .exclude(id__in=blocked_by_action.values("workflow_execution_id"))
        .order_by()
    )


def _expired(pol: Policy, now):
    return _candidates(pol).filter(updated_at__lt=now - timedelta(minutes=pol.older_than))


def _superfluous(pol: Policy):
    """Beyond the newest ``max_finished_executions`` (by updated_at, then
    id): found once per run as a boundary row, so a batch needs no sort of
    the whole table and executions finishing meanwhile are newer anyway."""
    finished = WorkflowExecution.objects.filter(task_execution_id__isnull=True, state__in=pol.states)
    boundary = finished.order_by("-updated_at", "-id").values_list("updated_at", "id")[
        pol.max_finished_executions - 1 : pol.max_finished_executions
    ]
    boundary = list(boundary)
    if not boundary:
        return None
    at, pk = boundary[0]
    return _candidates(pol).filter(Q(updated_at__lt=at) | Q(updated_at=at, id__lt=pk))


# --- deleting -------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run did (or, with dry_run, would do)."""

    dry_run: bool = False
    executions: int = 0  # root executions
    children: int = 0  # sub-workflow executions under them
    tasks: int = 0
    actions: int = 0
    batches: int = 0
    errors: int = 0  # batches that failed (logged); the tracker counts them as periodic errors
    depleted: bool = True  # False: the time budget ran out with more to delete
    seconds: float = 0.0
    by_reason: dict = field(default_factory=lambda: {"older_than": 0, "max_finished_executions": 0})

    def line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"{verb} {self.executions} execution(s) (+{self.children} sub-workflow), {self.tasks} task and "
            f"{self.actions} action execution(s) in {self.batches} batch(es), {self.seconds:.1f} s"
        )


class _SubWorkflows:
    """Whether a batch must look for sub-workflow executions: the lookup by
    ``root_execution_id`` is skipped while there are none. Known once per run, then only executions created
    since then (``created_at`` is indexed) can change the answer."""

    def __init__(self):
        self.since = timezone.now()
        self.seen = WorkflowExecution.objects.filter(root_execution_id__isnull=False).exists()

    def possible(self) -> bool:
        if not self.seen:
            self.seen = WorkflowExecution.objects.filter(
                root_execution_id__isnull=False, created_at__gte=self.since
            ).exists()
        return self.seen


def delete_batch(qs, limit: int, subworkflows: _SubWorkflows | None = None) -> tuple[int, int, int, int]:
    """One transaction: lock up to ``limit`` candidate roots (skipping rows
    another transaction holds, e.g. a rerun starting), delete them with
    everything under them. Returns (roots, children, tasks, actions)."""
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        roots = list(qs.values_list("id", flat=True)[:limit])
        if not roots:
            return 0, 0, 0, 0
        children = []
        if subworkflows is None or subworkflows.possible():
            children = list(
                WorkflowExecution.objects.filter(root_execution_id__in=roots)
                .exclude(id__in=roots)
                .values_list("id", flat=True)
            )
        # only("id"): the cascade needs the keys, not the executions' JSON columns.
        _, deleted = WorkflowExecution.objects.filter(id__in=roots + children).only("id").delete()
    return (
        len(roots),
        len(children),
        deleted.get("workflows.TaskExecution", 0),
        deleted.get("workflows.ActionExecution", 0),
    )


def _count(qs) -> tuple[int, int, int, int]:
    roots = qs.values("id")
    children = WorkflowExecution.objects.filter(root_execution_id__in=roots).exclude(id__in=roots)
    ids = Q(workflow_execution_id__in=roots) | Q(workflow_execution_id__in=children.values("id"))
    return (
        qs.count(),
        children.count(),
        TaskExecution.objects.filter(ids).count(),
        ActionExecution.objects.filter(ids).count(),
    )


def run(
    pol: Policy | None = None,
    now=None,
    dry_run: bool = False,
    time_budget: float | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Delete what the policy says may go, batch by batch, expired first.
    ``time_budget`` seconds: stop after the batch that passes it
    (``depleted`` False). ``dry_run``: count instead, delete nothing."""
    pol = pol or policy()
    out = Outcome(dry_run=dry_run)
    if not pol.applies:
        return out
    start = time.monotonic()
    now = now or timezone.now()
    subworkflows = None if dry_run else _SubWorkflows()
    for reason in ("older_than", "max_finished_executions"):
        if (reason == "older_than" and pol.older_than < 1) or (
            reason == "max_finished_executions" and pol.max_finished_executions < 1
        ):
            continue
        qs = _expired(pol, now) if reason == "older_than" else _superfluous(pol)
        if qs is None:
            continue
        if dry_run and reason == "max_finished_executions" and pol.older_than >= 1:
            qs = qs.filter(updated_at__gte=now - timedelta(minutes=pol.older_than))  # not counted twice
        if dry_run:
            _add(out, reason, _count(qs))
            continue
        while True:
            batch_start = time.monotonic()
            try:
                got = delete_batch(qs, pol.batch_size, subworkflows)
            except Exception:  # logged; the next evaluation tries again
                logger.exception("expiration policy: a batch failed")
                out.errors += 1
                out.depleted = False
                break
            if not got[0]:
                break
            _add(out, reason, got)
            out.batches += 1
            out.seconds = time.monotonic() - start
            if progress:
                progress(out)
            if time_budget is not None and out.seconds >= time_budget:
                out.depleted = False
                return out
            # As long again without the write lock: on SQLite a writer that
            # ends a transaction and begins the next one at once keeps the
            # lock from everyone polling for it (the clients' requests).
            time.sleep(min(time.monotonic() - batch_start, MAX_PAUSE_S) * _pause_factor())
        if out.errors:
            break
    out.seconds = time.monotonic() - start
    if out.executions and not dry_run:
        logger.info("expiration policy: %s", out.line())
    return out


def _pause_factor() -> float:
    return PAUSE_FACTOR.get(connection.vendor, DEFAULT_PAUSE_FACTOR)


def _add(out: Outcome, reason: str, got: tuple[int, int, int, int]) -> None:
    roots, children, tasks, actions = got
    out.executions += roots
    out.children += children
    out.tasks += tasks
    out.actions += actions
    out.by_reason[reason] += roots


# --- the tracker's periodic hook --------------------------------------------------

_next_evaluation = [0.0]  # monotonic time of this process's next evaluation


def periodic() -> Outcome:
    """Called by the tracker every cycle (``TRACKER["PERIODIC"]``): evaluates
    every ``EVALUATION_INTERVAL`` minutes, and spends at most
    ``SECONDS_PER_CYCLE`` per cycle, so polling goes on while a large
    backlog is deleted over several cycles."""
    pol = policy()
    mono = time.monotonic()
    if not pol.periodic or mono < _next_evaluation[0]:
        return Outcome()
    out = run(pol, time_budget=pol.seconds_per_cycle)
    _next_evaluation[0] = mono + pol.evaluation_interval * 60 if out.depleted else 0.0
    return out
