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

    warm_up()
    connections.close_all()
    gc.collect()
    gc.freeze()


def warm_up() -> None:
    """Load now what the first requests would otherwise load while a client
    waits: the URL conf with every view module it imports, the yaql parser
    (its LR tables take ~0.3 s to build per process) and Jinja's
    environment. py-spy on gunicorn's workers under ``manage.py rest_bench``:
    40% and 13% of a short run's busy samples went to the first two
    (bench/README.md, "HTTP path")."""
    from django.urls import get_resolver

    from core.lang import expressions
    from workflows import conf

    get_resolver().url_patterns  # noqa: B018 - imports config.urls and the views
    ctx = expressions.ExprContext(data={}, limits=conf.limits())
    expressions.evaluate("<% 1 %>", ctx)
    expressions.evaluate("{{ 1 }}", ctx)
