"""A throwaway database for one benchmark run, never the user's.

``manage.py bench`` (the parent) picks the database here, then re-runs itself
as a child process whose environment points Django at it *before* settings
are read, so nothing in the child can reach the configured database:

- SQLite (no DATABASE_URL, or a sqlite:// one): a new temporary directory;
  the child gets ``GUST_VAR_DIR=<tmp>`` (settings put ``gust.sqlite3`` there)
  and no DATABASE_URL. The directory is deleted afterwards.
- PostgreSQL: ``CREATE DATABASE gust_bench_<pid>`` through psycopg on the
  ``postgres`` maintenance database of the same server and user; the child
  gets a DATABASE_URL naming it. Dropped afterwards (``WITH (FORCE)``). The
  database named in DATABASE_URL is never connected to.

The child refuses to run unless the database it is connected to is exactly
the one the parent announced in ``GUST_BENCH_DB``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

ENV_EXPECTED_DB = "GUST_BENCH_DB"
PG_PREFIX = "gust_bench_"


@dataclass
class Throwaway:
    vendor: str  # "sqlite" | "postgresql"
    name: str  # the SQLite file path, or the PostgreSQL database name
    tmpdir: Path  # scratch directory of this run (results handoff, child log)
    env: dict[str, str] = field(default_factory=dict)  # environment for the child
    _admin: dict | None = None  # psycopg connect() kwargs for the maintenance DB

    def describe(self) -> str:
        if self.vendor == "sqlite":
            return f"SQLite file {self.name} (temporary)"
        return f"PostgreSQL database {self.name} on {self._admin['host']}:{self._admin['port']} (temporary)"

    def drop(self, keep: bool = False) -> None:
        if self.vendor == "postgresql" and not keep:
            _pg_drop(self._admin, self.name)
        if not keep:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def mask_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def create(environ: dict[str, str] | None = None, suffix: str = "") -> Throwaway:
    """``suffix`` tells apart several throwaways of one process (``gust_bench_<pid><suffix>``)."""
    environ = dict(os.environ if environ is None else environ)
    url = environ.get("DATABASE_URL", "").strip()
    tmpdir = Path(tempfile.mkdtemp(prefix="gust-bench-"))
    try:
        if not url or url.startswith("sqlite"):
            env = dict(environ)
            env.pop("DATABASE_URL", None)
            env["GUST_VAR_DIR"] = str(tmpdir)
            name = str(tmpdir / "gust.sqlite3")
            env[ENV_EXPECTED_DB] = name
            return Throwaway("sqlite", name, tmpdir, env)
        cfg = dj_database_url.parse(url)
        if cfg["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"):
            raise RuntimeError(f"bench runs on SQLite or PostgreSQL, not {cfg['ENGINE']} ({mask_url(url)})")
        name = f"{PG_PREFIX}{os.getpid()}{suffix}"
        if name == cfg["NAME"]:
            raise RuntimeError(f"DATABASE_URL already names {name}; refusing to use it as a throwaway")
        admin = {
            "host": cfg.get("HOST") or "127.0.0.1",
            "port": int(cfg.get("PORT") or 5432),
            "user": cfg.get("USER") or None,
            "password": cfg.get("PASSWORD") or None,
            "dbname": "postgres",
        }
        _pg_create(admin, name)
        parts = urlsplit(url)
        env = dict(environ)
        env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
        env[ENV_EXPECTED_DB] = name
        return Throwaway("postgresql", name, tmpdir, env, admin)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise


def _pg_connect(admin: dict):
    import psycopg

    return psycopg.connect(**{k: v for k, v in admin.items() if v is not None}, autocommit=True, connect_timeout=10)


def _pg_create(admin: dict, name: str) -> None:
    from psycopg import sql

    assert name.startswith(PG_PREFIX)
    with _pg_connect(admin) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            raise RuntimeError(
                f"PostgreSQL database {name} already exists (a crashed earlier run with the same pid?); "
                f"drop it yourself: DROP DATABASE {name}"
            )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _pg_drop(admin: dict, name: str) -> None:
    from psycopg import errors, sql

    assert name.startswith(PG_PREFIX), name  # never anything but our own
    with _pg_connect(admin) as conn:
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        except errors.SyntaxError:  # PostgreSQL < 13
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def check_connected(settings_dict: dict, environ: dict[str, str] | None = None) -> str:
    """In the child: the database Django uses must be the announced throwaway."""
    environ = os.environ if environ is None else environ
    expected = environ.get(ENV_EXPECTED_DB)
    actual = str(settings_dict.get("NAME"))
    if not expected:
        raise RuntimeError(f"{ENV_EXPECTED_DB} is not set: the bench child runs only when started by `manage.py bench`")
    if actual != expected:
        raise RuntimeError(f"refusing to run: connected to {actual!r}, expected the throwaway {expected!r}")
    if settings_dict["ENGINE"].endswith("sqlite3"):
        if not Path(actual).resolve().parent.name.startswith("gust-bench-"):
            raise RuntimeError(f"refusing to run: {actual} is not in a gust-bench temporary directory")
    elif not actual.startswith(PG_PREFIX):
        raise RuntimeError(f"refusing to run: {actual} is not a {PG_PREFIX}* database")
    return actual
