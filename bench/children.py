"""What the process-starting benchmarks (broker_bench, retention_bench)
share: migrating the throwaway database, running the command's ``--child``
steps on it, and writing the JSON and Markdown results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def migrate(env: dict) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"migrate failed:\n{done.stderr[-3000:]}")


def run_child(command: str, env: dict, *args: str, timeout: float = 1800) -> dict:
    """``manage.py <command> --child <args>`` on the throwaway database; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, "manage.py", command, "--child", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command} child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_results(doc: dict, out: Path, markdown: str, say) -> None:
    """The JSON at ``out``, the Markdown beside it (``.md``), and the Markdown on the console."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str))
    out.with_suffix(".md").write_text(markdown)
    say(markdown)
    say(f"{doc['kind']}: wrote {out}")
