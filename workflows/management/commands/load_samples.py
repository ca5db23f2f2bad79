"""``manage.py load_samples``: create or update the sample workflows."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workflows import services
from workflows.errors import InvalidDefinition
from workflows.startup import ensure_migrated


class Command(BaseCommand):
    help = "Create or update the workflows in samples/*.yaml (or the files given)."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", help="YAML files (default: samples/*.yaml)")

    def handle(self, *args, files=(), **options):
        ensure_migrated("load_samples")
        paths = [Path(f) for f in files] or sorted((Path(settings.BASE_DIR) / "samples").glob("*.yaml"))
        for path in paths:
            try:
                saved = services.save_workflows(path.read_text(), update=True)
            except InvalidDefinition as exc:
                raise CommandError(f"{path}: {exc.message}") from exc
            names = ", ".join(w.name for w in saved)
            self.stdout.write(f"loaded {path.name}: {names}")
