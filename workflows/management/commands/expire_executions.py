"""``manage.py expire_executions [--dry-run]``: apply the execution
expiration policy now, batch by batch, with a progress line per batch
(``workflows.retention``; the tracker process runs the same periodically)."""

import dataclasses

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from workflows import retention


class Command(BaseCommand):
    help = (
        "Delete finished executions as GUST['EXPIRATION'] says (older than OLDER_THAN minutes, beyond the newest "
        "MAX_FINISHED_EXECUTIONS), in batches of BATCH_SIZE; never a running one or one with running children."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted; delete nothing")
        parser.add_argument("--older-than", type=float, metavar="MINUTES", help="instead of OLDER_THAN")
        parser.add_argument(
            "--max-finished-executions", type=int, metavar="N", help="instead of MAX_FINISHED_EXECUTIONS"
        )
        parser.add_argument("--batch-size", type=int, metavar="N", help="instead of BATCH_SIZE")

    def handle(self, *args, dry_run=False, older_than=None, max_finished_executions=None, batch_size=None, **options):
        pol = self._policy(older_than, max_finished_executions, batch_size)
        if not pol.applies:
            raise CommandError(
                "Nothing to expire by: set OLDER_THAN (minutes, >= 1) or MAX_FINISHED_EXECUTIONS "
                "(>= 1) in GUST['EXPIRATION'] (GUST_EXPIRATION_*), or pass --older-than / "
                "--max-finished-executions"
            )
        self.stdout.write(
            f"expiration policy: older than {pol.older_than:g} min, keep at most "
            f"{pol.max_finished_executions or 'any number of'} finished, batches of {pol.batch_size}, "
            f"states {', '.join(pol.states)}{' (dry run)' if dry_run else ''}"
        )
        out = retention.run(pol, dry_run=dry_run, progress=self._progress)
        self.stdout.write(out.line())
        if out.errors:
            raise CommandError(f"{out.errors} batch(es) failed; see the log")

    def _policy(self, older_than, max_finished, batch_size) -> retention.Policy:
        try:
            pol = retention.policy()
            changes = {
                k: v
                for k, v in (
                    ("older_than", older_than),
                    ("max_finished_executions", max_finished),
                    ("batch_size", batch_size),
                )
                if v is not None
            }
            if changes.get("batch_size") is not None and not 1 <= changes["batch_size"] <= retention.MAX_BATCH_SIZE:
                raise ImproperlyConfigured(f"--batch-size must be from 1 to {retention.MAX_BATCH_SIZE}")
            if changes.get("older_than") is not None and (changes["older_than"] < 0 or 0 < changes["older_than"] < 1):
                raise ImproperlyConfigured("--older-than is in minutes, at least 1 (or 0 for no age limit)")
            if changes.get("max_finished_executions", 0) < 0:
                raise ImproperlyConfigured("--max-finished-executions must be at least 0")
            return dataclasses.replace(pol, **changes)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None

    def _progress(self, out: retention.Outcome) -> None:
        rate = out.executions / out.seconds if out.seconds else 0.0
        self.stdout.write(
            f"  batch {out.batches}: {out.executions} execution(s) deleted so far "
            f"({out.tasks} tasks, {out.actions} actions), {rate:,.0f}/s"
        )
