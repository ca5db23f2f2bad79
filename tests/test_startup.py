"""Processes refuse an unmigrated database and say how to fix it (seed 001).
Each check runs the real entry point in a subprocess on an empty SQLite file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_on_empty_db(tmp_path, *args):
    env = dict(os.environ, GUST_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings")
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    "args,process",
    [
        (["manage.py", "worker"], "worker"),
        (["manage.py", "run_tracker"], "tracker"),
        (["-c", "import config.wsgi"], "web server"),
    ],
)
def test_processes_refuse_an_unmigrated_database(tmp_path, args, process):
    result = run_on_empty_db(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert f"Gust {process} refuses to start" in result.stderr
    assert "Run `python manage.py migrate` first" in result.stderr
    # and nothing created the tables behind the user's back
    check = run_on_empty_db(tmp_path, "manage.py", "showmigrations", "workflows", "--plan")
    assert "[ ]  workflows.0001_initial" in check.stdout


@pytest.mark.django_db
def test_a_migrated_database_has_nothing_pending():
    from workflows.startup import pending_migrations

    assert pending_migrations() == []
