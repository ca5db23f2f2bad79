"""``manage.py worker``: the django-q2 worker pool, after the migration check,
registered for graceful shutdown (see ``workflows.cluster`` and
``workflows.lifecycle``)."""

from django.core.management.base import BaseCommand

from workflows import cluster, lifecycle
from workflows.startup import ensure_migrated, settle_after_start_up


class Command(BaseCommand):
    help = "Run the django-q2 worker pool that executes I/O actions (refuses an unmigrated database)."

    def handle(self, *args, **options):
        ensure_migrated("worker")
        name = lifecycle.register("worker")
        # The sentinel forks its workers: a connection opened before the fork
        # would be shared by every child and break ("server closed the connection").
        # The children inherit the frozen heap too.
        settle_after_start_up()
        try:
            cluster.run(name)  # returns after SIGTERM/SIGINT, once the jobs in flight are done
        finally:
            lifecycle.unregister(name)
