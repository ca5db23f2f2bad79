"""``manage.py worker``: the django-q2 cluster, after the migration check."""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from workflows.startup import ensure_migrated


class Command(BaseCommand):
    help = "Run the django-q2 worker cluster that executes I/O actions (refuses an unmigrated database)."

    def handle(self, *args, **options):
        ensure_migrated("worker")
        call_command("qcluster")
