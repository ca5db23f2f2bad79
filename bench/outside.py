"""A simulated outside service for ``manage.py compare_completion``.

It stands in for the system an async action hands a job to. Standard library
plus ``requests`` only (no Django), so the benchmark runs it as its own
process (``python -m bench.outside``) and tests run it in a thread.

    POST /jobs           start a job. Reads ``Mistral-Action-Execution-Id`` and
                         ``Gust-Callback-URL``; the JSON body may override the
                         job's behaviour (below). Answers 201
                         {"job_id", "status_url", "action_id"}.
    GET  /jobs/<id>      {"job_id", "state": "RUNNING"|"SUCCESS", "output"}; 404 if unknown.
                         <id> may also be the action execution id.
    POST /jobs/status    batch status: {"ids": [job or action execution ids]} ->
                         {"jobs": {id: {"state", "output"}}, "unknown": [ids]}
    GET  /_bench/jobs    every job record (optionally ?tag=...), for the benchmark
    POST /_bench/reset   forget every job
    POST /_bench/reset-gaps  forget each job's shortest gap between status queries
    GET  /_bench/health  {"ok": true, "jobs": n, "by_tag": {tag: n}, ...counters}
    ANY  /record/<key>   a side effect to count (``manage.py reliability``): every
                         call is counted per key, *before* the answer, so a call
                         whose caller died mid-request counts too. ``?sleep=S``
                         holds the answer S seconds (an action still in flight).
    GET  /_bench/records {"records": {key: calls}}

A job is done ``delay + U(0, jitter)`` seconds after it was started: the
service then records ``t_done`` (``time.time()``, the same clock Gust's
timestamps use) and the state turns SUCCESS. If callbacks are on it PUTs
``{"state": "SUCCESS", "output": {...}}`` to the job's Gust-Callback-URL
(from a small pool of sender threads, retried on connection errors and 5xx);
with ``drop_fraction`` > 0 that share of the callbacks is deliberately never
sent, so polling has to find those jobs (hybrid mode). ``never: true`` jobs
stay RUNNING forever (tracked-but-idle measurements).

Body fields of POST /jobs, each defaulting to the service's settings:
``delay``, ``jitter``, ``callback`` (bool), ``drop_fraction``, ``never``, ``tag``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

CALLBACK_RETRIES = 3


@dataclass
class Job:
    job_id: str
    action_id: str | None
    callback_url: str | None
    tag: str | None
    created: float  # time.time() when POST /jobs arrived
    due: float | None  # when it will be done (None: never)
    callback: bool
    dropped: bool  # the callback is deliberately not sent
    state: str = "RUNNING"
    t_done: float | None = None
    output: dict | None = None
    status_queries: int = 0  # GET /jobs/<id> and batch lookups that named this job
    seen_done_at: float | None = None  # the first status answer that said SUCCESS (a poll found it)
    last_query_at: float | None = None
    min_query_gap: float | None = None  # shortest time between two status queries of this job (polled twice?)
    callback_attempts: int = 0
    callback_status: int | None = None
    callback_error: str | None = None
    callback_sent_at: float | None = None  # first PUT started
    callback_answered_at: float | None = None  # the successful (or last) answer arrived
    headers: dict = field(default_factory=dict)

    def status(self) -> dict:
        return {"job_id": self.job_id, "state": self.state, "output": self.output, "finished_at": self.t_done}

    def queried(self, now: float) -> None:
        self.status_queries += 1
        if self.last_query_at is not None:
            gap = now - self.last_query_at
            self.min_query_gap = gap if self.min_query_gap is None else min(self.min_query_gap, gap)
        self.last_query_at = now
        if self.state != "RUNNING" and self.seen_done_at is None:
            self.seen_done_at = now


class OutsideService:
    """The job store, the completion scheduler and the callback senders.

    ``start()`` serves on 127.0.0.1 (port 0 picks a free one) in background
    threads; ``stop()`` shuts everything down. Thread-safe throughout.
    """

    def __init__(
        self,
        delay: float = 1.0,
        jitter: float = 0.0,
        callback: bool = True,
        drop_fraction: float = 0.0,
        seed: int = 1,
        port: int = 0,
        senders: int = 8,
    ):
        self.delay = delay
        self.jitter = jitter
        self.callback = callback
        self.drop_fraction = drop_fraction
        self.port = port
        self._rng = random.Random(seed)
        self._jobs: dict[str, Job] = {}
        self._by_action: dict[str, str] = {}
        self._heap: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._senders = ThreadPoolExecutor(senders, thread_name_prefix="outside-callback")
        self._session = threading.local()
        self.counters = {
            "jobs": 0,
            "status_queries": 0,
            "batch_queries": 0,
            "batch_ids": 0,
            "callbacks_sent": 0,
            "callbacks_dropped": 0,
            "callback_errors": 0,
        }
        self._records: dict[str, int] = {}
        self.server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- lifecycle --

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> OutsideService:
        self.server = _Server(("127.0.0.1", self.port), _Handler)
        self.server.service = self
        for target, name in ((self.server.serve_forever, "outside-http"), (self._complete_loop, "outside-scheduler")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._wake.notify_all()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        self._senders.shutdown(wait=False, cancel_futures=True)

    # -- jobs --

    def create_job(self, headers: dict, body: dict) -> Job:
        now = time.time()
        action_id = headers.get("Mistral-Action-Execution-Id") or None
        delay = float(body.get("delay", self.delay))
        jitter = float(body.get("jitter", self.jitter))
        callback = bool(body.get("callback", self.callback))
        drop_fraction = float(body.get("drop_fraction", self.drop_fraction))
        never = bool(body.get("never", False))
        with self._lock:
            if action_id and action_id in self._by_action:
                # The same action sent twice (a retried dispatch): the same job.
                return self._jobs[self._by_action[action_id]]
            extra = self._rng.uniform(0.0, jitter) if jitter > 0 else 0.0
            dropped = callback and drop_fraction > 0 and self._rng.random() < drop_fraction
            job = Job(
                job_id=uuid.uuid4().hex,
                action_id=action_id,
                callback_url=headers.get("Gust-Callback-URL") or None,
                tag=body.get("tag"),
                created=now,
                due=None if never else now + delay + extra,
                callback=callback,
                dropped=dropped,
                headers={k: v for k, v in headers.items() if k.lower().startswith(("mistral-", "gust-"))},
            )
            self._jobs[job.job_id] = job
            if action_id:
                self._by_action[action_id] = job.job_id
            self.counters["jobs"] += 1
            if job.due is not None:
                heapq.heappush(self._heap, (job.due, job.job_id))
                self._wake.notify()
        return job

    def find(self, ident: str) -> Job | None:
        with self._lock:
            return self._find(ident)

    def _find(self, ident: str) -> Job | None:
        job = self._jobs.get(ident)
        if job is None and ident in self._by_action:
            job = self._jobs.get(self._by_action[ident])
        return job

    def status(self, ident: str) -> dict | None:
        with self._lock:
            job = self._find(ident)
            if job is None:
                return None
            job.queried(time.time())
            self.counters["status_queries"] += 1
            return job.status()

    def batch_status(self, ids: list[str]) -> tuple[dict, list[str]]:
        found, unknown = {}, []
        now = time.time()
        with self._lock:
            self.counters["batch_queries"] += 1
            self.counters["batch_ids"] += len(ids)
            for ident in ids:
                job = self._find(ident)
                if job is None:
                    unknown.append(ident)
                    continue
                job.queried(now)
                found[ident] = {"state": job.state, "output": job.output, "finished_at": job.t_done}
        return found, unknown

    def records(self, tag: str | None = None) -> list[dict]:
        with self._lock:
            jobs = [j for j in self._jobs.values() if tag is None or j.tag == tag]
            return [asdict(j) for j in jobs]

    def summary(self) -> dict:
        """The counters, and how many jobs each tag has."""
        with self._lock:
            by_tag: dict[str, int] = {}
            for j in self._jobs.values():
                by_tag[j.tag or ""] = by_tag.get(j.tag or "", 0) + 1
            return {**self.counters, "by_tag": by_tag}

    def record(self, key: str) -> int:
        with self._lock:
            self._records[key] = self._records.get(key, 0) + 1
            return self._records[key]

    def recorded(self) -> dict[str, int]:
        with self._lock:
            return dict(self._records)

    def reset_gaps(self) -> None:
        """Forget the shortest gaps between status queries (a new measurement starts)."""
        with self._lock:
            for job in self._jobs.values():
                job.min_query_gap = job.last_query_at = None

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._jobs.clear()
            self._by_action.clear()
            self._heap.clear()
            for k in self.counters:
                self.counters[k] = 0

    # -- completion --

    def _complete_loop(self) -> None:
        while True:
            with self._lock:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.time()):
                    timeout = (self._heap[0][0] - time.time()) if self._heap else None
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                _, job_id = heapq.heappop(self._heap)
                job = self._jobs.get(job_id)
                if job is None:  # reset meanwhile
                    continue
                job.t_done = time.time()
                job.state = "SUCCESS"
                job.output = {"job_id": job.job_id, "done_at": job.t_done}
                send = job.callback and job.callback_url and not job.dropped
                if job.callback and job.dropped:
                    self.counters["callbacks_dropped"] += 1
            if send:
                self._senders.submit(self._send_callback, job)

    def _http(self) -> requests.Session:
        s = getattr(self._session, "s", None)
        if s is None:
            s = self._session.s = requests.Session()
        return s

    def _send_callback(self, job: Job) -> None:
        body = {"state": "SUCCESS", "output": job.output, "finished_at": job.t_done}
        job.callback_sent_at = time.time()
        for attempt in range(1, CALLBACK_RETRIES + 1):
            job.callback_attempts = attempt
            try:
                resp = self._http().put(job.callback_url, json=body, timeout=60)
                job.callback_status = resp.status_code
                job.callback_answered_at = time.time()
                if resp.status_code < 500:
                    if resp.status_code >= 400:
                        job.callback_error = resp.text[:500]
                        with self._lock:
                            self.counters["callback_errors"] += 1
                    else:
                        with self._lock:
                            self.counters["callbacks_sent"] += 1
                    return
                job.callback_error = resp.text[:500]
            except requests.RequestException as exc:
                job.callback_error = f"{type(exc).__name__}: {exc}"
            if self._stopped:
                break
            time.sleep(0.2 * attempt)
        with self._lock:
            self.counters["callback_errors"] += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # bursts of job starts from the worker cluster
    service: OutsideService


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive for clients with a session (the batch query)
    # Headers and body are two writes: with Nagle's algorithm on, the body waits
    # for the ACK of the headers, which a keep-alive client delays (~40 ms).
    disable_nagle_algorithm = True
    server: _Server

    def _send(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def _record(self) -> None:
        parts = urlsplit(self.path)
        self._body()  # read whatever was sent, so the connection stays usable
        calls = self.server.service.record(parts.path[len("/record/") :])
        try:
            pause = float(parse_qs(parts.query).get("sleep", ["0"])[0])
        except ValueError:
            pause = 0.0
        if pause > 0:
            time.sleep(min(pause, 60.0))
        return self._send(200, {"calls": calls})

    def do_PUT(self):
        if self.path.startswith("/record/"):
            return self._record()
        return self._send(404, {"error": "no such endpoint"})

    def do_POST(self):
        if self.path.startswith("/record/"):
            return self._record()
        svc = self.server.service
        path = urlsplit(self.path).path.rstrip("/")
        body = self._body()
        if body is None or not isinstance(body, dict):
            return self._send(400, {"error": "send a JSON object"})
        if path == "/jobs":
            job = svc.create_job(dict(self.headers.items()), body)
            host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_address[1]}"
            return self._send(
                201,
                {"job_id": job.job_id, "action_id": job.action_id, "status_url": f"http://{host}/jobs/{job.job_id}"},
            )
        if path == "/jobs/status":
            ids = body.get("ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                return self._send(400, {"error": "'ids' must be a list of job or action execution ids"})
            found, unknown = svc.batch_status(ids)
            return self._send(200, {"jobs": found, "unknown": unknown})
        if path == "/_bench/reset":
            svc.reset()
            return self._send(200, {"ok": True})
        if path == "/_bench/reset-gaps":
            svc.reset_gaps()
            return self._send(200, {"ok": True})
        return self._send(404, {"error": f"no such endpoint: POST {path}"})

    def do_GET(self):
        if self.path.startswith("/record/"):
            return self._record()
        svc = self.server.service
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/")
        if path.startswith("/jobs/"):
            answer = svc.status(path[len("/jobs/") :])
            if answer is None:
                return self._send(404, {"error": "unknown job"})
            return self._send(200, answer)
        if path == "/_bench/jobs":
            tag = parse_qs(parts.query).get("tag", [None])[0]
            with svc._lock:
                counters = dict(svc.counters)
            return self._send(200, {"jobs": svc.records(tag), "counters": counters})
        if path == "/_bench/records":
            return self._send(200, {"records": svc.recorded()})
        if path == "/_bench/health":
            return self._send(200, {"ok": True, **svc.summary()})
        return self._send(404, {"error": f"no such endpoint: GET {path}"})

    def log_message(self, *args):
        pass


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.outside --delay 1``: serve until SIGTERM/SIGINT.
    The first stdout line is ``listening on http://127.0.0.1:<port>``."""
    import signal

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delay", type=float, default=1.0)
    p.add_argument("--jitter", type=float, default=0.0)
    p.add_argument("--no-callback", action="store_true")
    p.add_argument("--drop-fraction", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--senders", type=int, default=8)
    a = p.parse_args(argv)
    svc = OutsideService(
        delay=a.delay,
        jitter=a.jitter,
        callback=not a.no_callback,
        drop_fraction=a.drop_fraction,
        seed=a.seed,
        port=a.port,
        senders=a.senders,
    ).start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"listening on {svc.url}", flush=True)
    stop.wait()
    svc.stop()
    sys.exit(0)


if __name__ == "__main__":
    main()
