"""Execution states, as Mistral names them, and the one transition table.

States are what an execution *is*; events (an action succeeded, a user asked
to pause) are inputs to the engine and live in ``core.engine``.
Every predicate below is derived from ``TRANSITIONS`` or ``TERMINAL`` so the
two cannot drift apart.
"""

from enum import StrEnum


class State(StrEnum):
    IDLE = "IDLE"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    RUNNING_DELAYED = "RUNNING_DELAYED"
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"  # a failed task an operator chose to skip


TERMINAL = frozenset({State.SUCCESS, State.ERROR, State.CANCELLED, State.SKIPPED})
ACTIVE = frozenset({State.IDLE, State.WAITING, State.RUNNING, State.RUNNING_DELAYED})

# from-state -> states it may move to. Anything else is a bug or a conflict.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.IDLE: frozenset({State.WAITING, State.RUNNING, State.ERROR, State.CANCELLED, State.PAUSED}),
    State.WAITING: frozenset({State.RUNNING, State.ERROR, State.CANCELLED, State.PAUSED}),
    State.RUNNING: frozenset({State.RUNNING_DELAYED, State.PAUSED, State.SUCCESS, State.ERROR, State.CANCELLED}),
    State.RUNNING_DELAYED: frozenset({State.RUNNING, State.PAUSED, State.ERROR, State.CANCELLED}),
    State.PAUSED: frozenset({State.RUNNING, State.WAITING, State.ERROR, State.CANCELLED}),
    State.SUCCESS: frozenset(),
    State.ERROR: frozenset(),
    State.CANCELLED: frozenset(),
    State.SKIPPED: frozenset(),
}

# Terminal states have no automatic way out; only an operator's rerun or skip
# of a failed task moves out of ERROR (and brings its workflow back to RUNNING).
OPERATOR_TRANSITIONS: dict[State, frozenset[State]] = {
    State.ERROR: frozenset({State.RUNNING, State.SKIPPED}),
}

assert all(not TRANSITIONS[s] for s in TERMINAL), "terminal states have no way out"

CHOICES = [(s.value, s.value) for s in State]


def is_terminal(state: str) -> bool:
    return state in TERMINAL


def can_move(from_state: str, to_state: str) -> bool:
    return State(to_state) in TRANSITIONS[State(from_state)]
