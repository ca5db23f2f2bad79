"""Refuse to run on a database with unapplied migrations (seed 001).

Mistral's services created missing tables on start and broke the next
schema upgrade. Gust never creates tables on its own: ``manage.py migrate``
is the one way, and every long-running process checks first.
"""

import sys

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


class UnmigratedDatabase(SystemExit):
    pass


def pending_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    connection = connections[alias]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{m.app_label}.{m.name}" for m, _ in plan]


def ensure_migrated(process: str) -> None:
    pending = pending_migrations()
    if pending:
        shown = ", ".join(pending[:5]) + (f" and {len(pending) - 5} more" if len(pending) > 5 else "")
        msg = (
            f"Gust {process} refuses to start: the database has {len(pending)} unapplied "
            f"migration(s) ({shown}). Run `python manage.py migrate` first; Gust never "
            f"creates or alters tables on its own."
        )
        print(msg, file=sys.stderr)
        raise UnmigratedDatabase(2)


def settle_after_start_up() -> None:
    """Call once a long-running process has loaded everything it needs.

    Closes the start-up connections (a process that forks, like the worker's
    sentinel, must not hand an open connection to its children) and moves
    every object alive now (Django, DRF, yaql, the URL conf, ...) out of the
    cyclic garbage collector's sight with ``gc.freeze()``: without it a full
    collection walked that whole heap every ~10 fan100 executions (+28 ms
    each time, bench/README.md).
    """
    import gc

    connections.close_all()
    gc.collect()
    gc.freeze()
