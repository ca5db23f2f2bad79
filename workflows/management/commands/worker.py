"""``manage.py worker``: the django-q2 cluster, after the migration check,
registered for graceful shutdown (see ``workflows.lifecycle``)."""

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from workflows import lifecycle
from workflows.startup import ensure_migrated


class Command(BaseCommand):
    help = "Run the django-q2 worker cluster that executes I/O actions (refuses an unmigrated database)."

    def handle(self, *args, **options):
        ensure_migrated("worker")
        name = lifecycle.register("worker")
        # The cluster forks its workers: a connection opened before the fork
        # would be shared by every child and break ("server closed the connection").
        connections.close_all()
        heartbeat = lifecycle.Heartbeat(name).start()
        try:
            call_command("qcluster")  # returns after SIGTERM, once in-flight jobs are done
        finally:
            heartbeat.stop()
            lifecycle.unregister(name)
