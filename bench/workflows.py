"""The benchmark workflows, as Mistral v2 YAML, and what each must leave behind.

Every task runs ``std.noop`` (an engine-local action), so one
``services.start_execution`` call runs a whole execution to SUCCESS: the
numbers measure the engine and the database, not a worker queue.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQ_LEN = 50
FAN_WIDTH = 100
CONC_THREADS = 20


@dataclass(frozen=True)
class Shape:
    workflow: str  # the workflow name the scenario starts
    tasks: int  # TaskExecution rows one SUCCESS execution must have (and as many actions)


def noop1_yaml() -> str:
    return "version: '2.0'\n\nbench_noop1:\n  tasks:\n    t1:\n      action: std.noop\n"


def seq_yaml(n: int = SEQ_LEN) -> str:
    lines = ["version: '2.0'", "", f"bench_seq{n}:", "  tasks:"]
    for i in range(1, n + 1):
        lines += [f"    t{i}:", "      action: std.noop"]
        if i < n:
            lines.append(f"      on-success: t{i + 1}")
    return "\n".join(lines) + "\n"


def fan_yaml(n: int = FAN_WIDTH) -> str:
    lines = ["version: '2.0'", "", f"bench_fan{n}:", "  tasks:"]
    for i in range(1, n + 1):
        lines += [f"    p{i}:", "      action: std.noop", "      on-success: [join_all]"]
    lines += ["    join_all:", "      join: all", "      action: std.noop"]
    return "\n".join(lines) + "\n"


def all_yaml() -> list[str]:
    return [noop1_yaml(), seq_yaml(), fan_yaml()]


# 100 parallel tasks plus the join task: a `join: all` task collects every
# arrival in ONE task execution, so fan100 leaves 101 rows, not 200.
SHAPES = {
    "noop1": Shape("bench_noop1", 1),
    "seq50": Shape(f"bench_seq{SEQ_LEN}", SEQ_LEN),
    "fan100": Shape(f"bench_fan{FAN_WIDTH}", FAN_WIDTH + 1),
    "conc": Shape(f"bench_seq{SEQ_LEN}", SEQ_LEN),  # CONC_THREADS seq50 executions at once
}
