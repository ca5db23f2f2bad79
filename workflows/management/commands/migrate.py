"""``manage.py migrate`` with progress: Django's command, each step numbered and timed.

Django's own command prints ``Applying app.0001_initial... OK`` and says how
long a step took only at ``-v 2``, among many other lines. A fresh database
(``bin/run`` the first time, the benchmarks' throwaway databases) applies
every migration at once, so this says where it is and how long it takes:

    Applying workflows.0001_initial... [3/21] OK (0.41 s, 1.2 s in all)
    ...
    Applied 21 migrations in 6.3 s.

Everything else (options, checks, signals, the plan) is Django's: this
subclass only overrides the progress callback and adds the closing line.
It overrides the built-in command as Django documents ("Overriding
commands": an app's command of the same name wins).
"""

from __future__ import annotations

import time

from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections
from django.db.migrations.executor import MigrationExecutor


class Command(DjangoMigrate):
    help = DjangoMigrate.help + " Numbers and times each step."

    def handle(self, *args, **options):
        self._started = time.monotonic()
        self._step_started = self._started
        self._done = 0
        self._total = self._planned(options) if not (options.get("app_label") or options.get("prune")) else None
        result = super().handle(*args, **options)
        if self.verbosity >= 1 and self._done:
            self.stdout.write(
                f"Applied {self._done} migration{'s' if self._done != 1 else ''} "
                f"in {time.monotonic() - self._started:.1f} s."
            )
        return result

    @staticmethod
    def _planned(options) -> int | None:
        """Migrations the run will apply (the whole project's plan), or None when it can not tell."""
        try:
            executor = MigrationExecutor(connections[options["database"]])
            return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
        except Exception:  # noqa: BLE001 - only the counter is lost; Django reports the real problem next
            return None

    def migration_progress_callback(self, action, migration=None, fake=False):
        if action == "apply_start":
            self._step_started = time.monotonic()
        elif action == "apply_success" and self.verbosity >= 1:
            self._done += 1
            now = time.monotonic()
            of = f"/{self._total}" if self._total else ""
            self.stdout.write(f" [{self._done}{of}]", ending="")
            self.stdout.write(self.style.SUCCESS(" FAKED" if fake else " OK"), ending="")
            self.stdout.write(f" ({now - self._step_started:.2f} s, {now - self._started:.1f} s in all)")
            return
        super().migration_progress_callback(action, migration, fake)
