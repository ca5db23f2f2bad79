"""``manage.py load_samples``: create the sample workflows that are missing.

``bin/run`` runs it at every start, so it must not undo a user's work: a
sample whose stored definition differs from the shipped file is left as it
is (and the output says so) unless ``--force`` is given.

The samples are written for the default address, ``http://127.0.0.1:8000``;
that text is replaced by ``GUST["PUBLIC_URL"]`` (``GUST_PUBLIC_URL``, which
``bin/run`` derives from ``GUST_PORT``), so ``fetch`` calls this Gust. A
sample as shipped for an earlier public URL is not an edit: it is moved to
the current one.
"""

import re
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.lang import spec as lang
from workflows import conf, services
from workflows.errors import InvalidDefinition
from workflows.models import WorkflowDefinition
from workflows.startup import ensure_migrated

SHIPPED_URL = "http://127.0.0.1:8000"


def shipped_definitions(text: str) -> dict[str, str]:
    """Each workflow's definition as ``save_workflows`` stores it (the file
    itself for a one-workflow file), before the public URL is filled in."""
    specs = services.parse_or_raise(text)
    if len(specs) == 1:
        return {name: text for name in specs}
    return {name: lang.workflow_text(name, spec.raw) for name, spec in specs.items()}


def as_shipped(stored: str, shipped: str) -> bool:
    """``stored`` is ``shipped`` with SHIPPED_URL replaced by one URL, any one."""
    parts = [re.escape(p) for p in shipped.split(SHIPPED_URL)]
    pattern = parts[0] + "".join(
        (r"(?P<url>https?://[^\s'\"]+?)" if i == 1 else "(?P=url)") + part for i, part in enumerate(parts[1:], 1)
    )
    return re.fullmatch(pattern, stored) is not None


class Command(BaseCommand):
    help = (
        "Create the workflows of samples/*.yaml (or of the files given) that do not exist; "
        "one whose stored definition differs from its file is left alone unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="*", help="YAML files (default: samples/*.yaml)")
        parser.add_argument(
            "--force", action="store_true", help="replace samples whose stored definition differs from the file"
        )

    def handle(self, *args, files=(), force=False, **options):
        ensure_migrated("load_samples")
        paths = [Path(f) for f in files] or sorted((Path(settings.BASE_DIR) / "samples").glob("*.yaml"))
        public_url = conf.get("PUBLIC_URL").rstrip("/")
        for path in paths:
            try:
                shipped = shipped_definitions(path.read_text())
            except InvalidDefinition as exc:
                raise CommandError(f"{path}: {exc.message}") from exc
            shown = path.relative_to(settings.BASE_DIR) if path.is_relative_to(settings.BASE_DIR) else path
            for name, text in shipped.items():
                wanted = text.replace(SHIPPED_URL, public_url)
                stored = WorkflowDefinition.objects.filter(name=name, namespace="").first()
                if stored is None:
                    services.save_workflows(wanted)
                    self.stdout.write(f"created {name} from {shown}")
                elif stored.definition == wanted:
                    self.stdout.write(f"unchanged {name}")
                elif as_shipped(stored.definition, text):
                    services.save_workflows(wanted, update=True)
                    self.stdout.write(f"updated {name} for {public_url}")
                elif force:
                    services.save_workflows(wanted, update=True)
                    self.stdout.write(f"replaced {name} with {shown} (--force)")
                else:
                    self.stdout.write(
                        self.style.WARNING(f"left {name} as it is: it differs from {shown} (--force replaces it)")
                    )
