"""``manage.py track_result <action_execution_id> [--delete]``: start or stop
polling one async action by hand, like StackStorm's ``st2-track-result``
(seed 000) — for when a callback was lost or the outside system was down."""

from django.core.management.base import BaseCommand, CommandError

from tracker import conf, services
from workflows.errors import GustError
from workflows.startup import ensure_migrated


class Command(BaseCommand):
    help = "Start (or with --delete stop) tracking the result of one action execution."

    def add_arguments(self, parser):
        parser.add_argument("action_execution_id")
        parser.add_argument("--delete", action="store_true", help="stop tracking it")
        parser.add_argument("--mode", choices=["poll", "hybrid"], default="poll")
        parser.add_argument("--query-interval", type=float, help="seconds between queries (default: TRACKER)")

    def handle(self, action_execution_id, delete=False, mode="poll", query_interval=None, **options):
        ensure_migrated("track_result")
        if delete:
            if services.untrack(action_execution_id):
                self.stdout.write(f"Stopped tracking action execution {action_execution_id}.")
            else:
                self.stdout.write(f"Action execution {action_execution_id} was not tracked; nothing to do.")
            return
        try:
            row = services.track(action_execution_id, mode=mode, added_by="track_result", query_interval=query_interval)
        except GustError as exc:
            raise CommandError(exc.message) from exc
        if row.query_interval:
            every = f"every {row.query_interval:g} s"
        else:
            every = (
                f"every QUERY_INTERVAL of the tracker that claims it ({conf.get('QUERY_INTERVAL'):g} s "
                f"with this process's settings)"
            )
        self.stdout.write(
            f"Tracking action execution {action_execution_id} ({row.action.name}) in {row.mode} mode, "
            f"{every}; the first query is due now. A running tracker (manage.py run_tracker) "
            f"will pick it up; stop with --delete."
        )
