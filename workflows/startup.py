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
