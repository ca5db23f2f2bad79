"""``manage.py multihost_bench``: web, worker and tracker processes on
"hosts" of their own (network namespaces on this machine, bench/netns.py),
reaching PostgreSQL and Redis over a virtual network, with one worker host
stopped mid-run (its processes killed, its link down). Every execution must
end SUCCESS and no action may run twice unless its task is ``safe-rerun``
(bench/scaleout.py's check). bench/README.md, "Multi-host". Writes
bench/results/multihost-<timestamp>.json and .md."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from bench import children, netns
from bench import scaleout as bench_scaleout
from tracker.conf import results_dir

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/postgres"
# Short enough that the dead host's work comes back within the run.
FAST_RECOVERY = {
    "GUST_WORKER_LEASE": "3",
    "GUST_WORKER_REDISPATCH_AFTER": "4",
    "GUST_QUERY_INTERVAL": "1",
    "GUST_PG_IDLE_IN_TRANSACTION_TIMEOUT": "3",
}


class Command(BaseCommand):
    help = (
        "Web, 2 worker and tracker hosts in network namespaces over PostgreSQL + Redis; one worker host is "
        "stopped mid-run; checks that every execution ends SUCCESS and nothing ran twice unless safe."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--clients", type=int, default=6)
        parser.add_argument("--seconds", type=float, default=20.0, help="load (20 s)")
        parser.add_argument("--kill-at", type=float, default=6.0, help="seconds into the load the host stops (6)")
        parser.add_argument("--no-kill", action="store_true", help="run without stopping a host")
        parser.add_argument("--output", type=Path, default=None)

    def handle(self, *args, **opts):
        why = netns.available()
        if why:
            raise CommandError(f"network namespaces are not available here: {why}")
        if not 1 <= opts["clients"] <= 50 or not 2 <= opts["seconds"] <= 300:
            raise CommandError("--clients 1..50, --seconds 2..300")
        if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
            os.environ["DATABASE_URL"] = DEFAULT_PG
        redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        kill_at = None if opts["no_kill"] else opts["kill_at"]
        from bench import isolation

        started = dt.datetime.now(dt.UTC)
        load_before = [round(x, 2) for x in os.getloadavg()]
        db = isolation.create()
        self.stdout.write(f"multihost_bench: {db.describe()}")
        env = {**db.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
        env.pop("GUST_SYNC_WORKER", None)
        try:
            children.migrate(env)
            with netns.Hosts({"web": 1, "worker": 2, "tracker": 1}, env["DATABASE_URL"], redis_url) as hosts:
                self.stdout.write(f"multihost_bench: hosts {', '.join(hosts.names)} on bridge {netns.BRIDGE}")
                res = bench_scaleout.run_config(
                    db,
                    env,
                    bench_scaleout.Config(1, 2),
                    opts["clients"],
                    opts["seconds"],
                    self.stdout.write,
                    "redis",
                    redis_url,
                    "mh",
                    hosts=hosts,
                    kill_at=kill_at,
                    extra_env=FAST_RECOVERY,
                )
        finally:
            db.drop()
            left = netns.cleanup()
            if left:
                self.stderr.write(f"multihost_bench: removed leftovers {left}")
        res["hosts"] = {
            "web": [netns.Hosts.address("web", 0)],
            "worker": [netns.Hosts.address("worker", i) for i in range(2)],
            "tracker": [netns.Hosts.address("tracker", 0)],
            "postgres_redis_via": netns.GATEWAY,
        }
        doc = {
            "kind": "multihost_bench",
            "timestamp": started.isoformat(timespec="seconds"),
            "command": (
                f"python manage.py multihost_bench --clients {opts['clients']} --seconds "
                f"{opts['seconds']:g}" + (" --no-kill" if kill_at is None else f" --kill-at {kill_at:g}")
            ),
            "recovery_settings": FAST_RECOVERY,
            "load_average_before": load_before,
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "database": db.vendor,
            "broker": "redis",
            "clients": opts["clients"],
            "seconds": opts["seconds"],
            "results": [res],
            "ok": res["check"]["ok"],
        }
        out = opts["output"] or results_dir() / f"multihost-{started:%Y%m%dT%H%M%SZ}.json"
        children.write_results(doc, out, markdown(doc), self.stdout.write)
        if not doc["ok"]:
            raise CommandError("an execution did not end SUCCESS or an action ran twice (see the JSON)")


def markdown(doc: dict) -> str:
    r = doc["results"][0]
    ck, killed = r["check"], r.get("killed")
    lines = [
        bench_scaleout.markdown(doc).rstrip(),
        "",
        f"Hosts (network namespaces): web {r['hosts']['web'][0]}, workers {', '.join(r['hosts']['worker'])}, "
        f"tracker {r['hosts']['tracker'][0]}; PostgreSQL and Redis through {r['hosts']['postgres_redis_via']}. "
        + (
            f"Stopped {killed['host']} ({killed['processes_killed']} processes killed, link "
            f"{killed['link_down']} down) {doc['results'][0].get('kill_at', '')}mid-run. "
            if killed
            else "No host stopped. "
        )
        + f"Executions {ck['executions']}: {json.dumps(ck['execution_states'])}; actions "
        f"{json.dumps(ck['action_states'])}; run twice {ck['run_more_than_once']} "
        f"(safe-rerun tasks: re-run after the host was lost {ck.get('rerun_safely', 0)}); ok {ck['ok']}.",
    ]
    return "\n".join(lines) + "\n"
