"""The bounds on everything a workflow author or an API caller controls.

One frozen value, built from settings by ``workflows.conf.limits()`` at call
time and passed into the pure core (parsing, expressions, the engine), which
never reads settings itself. The defaults here are the settings' defaults.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    # Largest stored value (a result, the published variables, the context, an
    # input or output), as Mistral's execution_field_size_limit_kb; -1: none.
    field_size_kb: int = 1024
    # Wall-clock budget of one expression evaluation, in seconds; 0: none.
    expression_seconds: float = 2.0
    # YAQL's own bounds: items taken from one iterator, bytes of one collection.
    yaql_limit_iterators: int = 100_000
    yaql_memory_quota: int = 50_000_000
    # Longest range() a Jinja expression may build (the sandbox allows 100,000).
    jinja_max_range: int = 10_000
    # Deepest nesting of a YAML definition or a JSON value sent to the API.
    max_depth: int = 100
    # Largest workflow definition text.
    definition_kb: int = 1024
    # Values YAML aliases may add beyond the ones written in the document.
    yaml_alias_nodes: int = 10_000
    # Engine-local steps (tasks started) in one transaction, and the seconds
    # they may take together; the rest continues in a new transaction, so a
    # tight or slow loop yields the lock. 0: no bound.
    engine_steps: int = 200
    engine_seconds: float = 5.0
    # Deepest chain of sub-workflows under one root execution (a recursion's bound).
    subworkflow_depth: int = 20

    @property
    def field_size_bytes(self) -> int | None:
        return None if self.field_size_kb < 0 else self.field_size_kb * 1024


DEFAULT = Limits()
