"""``manage.py remote_mistral_bench``: mistral.workflow against real Mistral 23
and a second Gust, callback vs polling vs hybrid (bench/remote.py)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bench import remote

DEFAULT_VENV = "/work/mistral-venv"


class Command(BaseCommand):
    help = (
        "Run a local Gust's mistral.workflow task against real Mistral 23 (from its own virtualenv) and a "
        "second Gust, tracked by callback, polling (1 s and 0.2 s) and hybrid; record the latency side by side. "
        "Every Gust runs on a throwaway database; the configured one is never touched."
    )
    requires_system_checks = []  # the command itself opens no database

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, default=20, help="timed executions per remote and mode (default 20)")
        parser.add_argument(
            "--mistral-venv", default=DEFAULT_VENV, help=f"virtualenv with mistral==23.* (default {DEFAULT_VENV})"
        )
        parser.add_argument("--remotes", default="mistral,gust", help="mistral, gust or both (default both)")
        parser.add_argument(
            "--output", default=None, help="JSON path (default bench/remote-mistral.json, with the markdown beside it)"
        )

    def handle(self, *args, n, mistral_venv, remotes, output, **options):
        chosen = tuple(r.strip() for r in remotes.split(",") if r.strip())
        if not chosen or set(chosen) - {"mistral", "gust"}:
            raise CommandError(f"--remotes takes mistral, gust or both, not {remotes!r}")
        if not 1 <= n <= 1000:
            raise CommandError("--n must be from 1 to 1000")
        with tempfile.TemporaryDirectory(prefix="gust-remote-bench-") as scratch:
            try:
                result = remote.run(n, Path(mistral_venv), Path(scratch), self.stdout.write, chosen)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
        path = Path(output) if output else Path(settings.BASE_DIR) / "bench" / "remote-mistral.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        path.with_suffix(".md").write_text(remote.markdown(result))
        self.stdout.write(remote.markdown(result))
        self.stdout.write(f"wrote {path} and {path.with_suffix('.md')}")
