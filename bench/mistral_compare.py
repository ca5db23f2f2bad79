"""Record what real Mistral 23 does with tests/engine/mistral_cases/cases.yaml.

Each case runs through Mistral's own engine in process: its unit-test harness
(mistral.tests.unit.engine.base.EngineTestCase: SQLite in memory, the fake
RPC transport, the local executor), the same one Mistral's engine tests use.
The outcome of each case (workflow state, state_info, output, and each task
execution in creation order: name, state, state_info, published, result as
the API's GET /v2/tasks shows it) goes to tests/engine/mistral_cases/
recorded.json, which tests/engine/test_mistral_cases.py compares with Gust.
A case with steps (resume, skip, rerun) also keeps, under before_steps, the
same outcome as it stood before each step.

Refresh the data:

    # once: a virtualenv with Mistral 23 and its test helpers
    /root/.pyenv/versions/3.11.7/bin/python3.11 -m venv /work/mistral-venv
    /work/mistral-venv/bin/pip install 'mistral==23.*' oslotest testtools fixtures
    # then, from the repository root (any Python 3 starts it):
    python bench/mistral_compare.py /work/mistral-venv [CASE_NAME ...]

With case names, only those are run again and the others keep their record.
The script re-runs itself with the given virtualenv's Python; the wheel ships
mistral/tests, so no checkout of Mistral is needed.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_DIR = os.path.join(HERE, "..", "tests", "engine", "mistral_cases")
CASES = os.path.abspath(os.path.join(CASES_DIR, "cases.yaml"))
RECORDED = os.path.abspath(os.path.join(CASES_DIR, "recorded.json"))

FINAL = ("SUCCESS", "ERROR", "CANCELLED", "PAUSED")


def outer(venv: str, only: list[str]) -> int:
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        sys.exit(f"no Python at {python}")
    out = RECORDED + ".new"
    # Mistral writes mistral.log into its working directory: a scratch one.
    with tempfile.TemporaryDirectory() as scratch:
        rc = subprocess.call([python, os.path.abspath(__file__), "--inner", CASES, out, *only], cwd=scratch)
    if rc != 0:
        return rc
    with open(out) as f:
        new = json.load(f)
    os.remove(out)
    old = {}
    if only and os.path.exists(RECORDED):
        with open(RECORDED) as f:
            old = json.load(f)
    old.update(new)
    with open(RECORDED, "w") as f:
        json.dump(old, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"recorded {len(new)} cases into {os.path.relpath(RECORDED)}")
    return 0


def inner(cases_path: str, out_path: str, only: list[str]) -> int:
    import unittest

    # mistral.tests.unit picks the oslo.service backend: it comes first.
    from mistral.tests.unit.engine import base  # isort: skip
    import sqlalchemy
    import yaml
    from mistral import exceptions as exc
    from mistral.db.sqlalchemy import base as db_base
    from mistral.db.v2 import api as db_api
    from mistral.lang import parser as spec_parser
    from mistral.services import workflows as wf_service
    from mistral.workflow import data_flow

    with open(cases_path) as f:
        cases = yaml.safe_load(f)
    if only:
        cases = [c for c in cases if c["name"] in only]
    results = {}

    def snapshot(wf_ex_id):
        with db_api.transaction():
            wf_ex = db_api.get_workflow_execution(wf_ex_id)
            # created_at has whole seconds: SQLite's rowid keeps the order
            # the task executions were inserted in.
            rows = db_base._get_thread_local_session().execute(
                sqlalchemy.text("SELECT id FROM task_executions_v2 WHERE workflow_execution_id = :w ORDER BY rowid"),
                {"w": wf_ex_id},
            )
            order = {r[0]: i for i, r in enumerate(rows)}
            tasks = sorted(wf_ex.task_executions, key=lambda t: order[t.id])
            return {
                "state": wf_ex.state,
                "state_info": wf_ex.state_info,
                "output": wf_ex.output,
                "tasks": [
                    {
                        "name": t.name,
                        "state": t.state,
                        "state_info": t.state_info,
                        "published": t.published,
                        "result": data_flow.get_task_execution_result(t),
                    }
                    for t in tasks
                ],
            }

    class Recorder(base.EngineTestCase):
        def wait(self, wf_ex_id, timeout=30):
            deadline = time.time() + timeout
            while True:
                with db_api.transaction():
                    wf_ex = db_api.get_workflow_execution(wf_ex_id)
                    state = wf_ex.state
                    active = ("RUNNING", "RUNNING_DELAYED", "WAITING")
                    busy = [t.name for t in wf_ex.task_executions if t.state in active]
                if state in FINAL and not (state == "PAUSED" and busy):
                    time.sleep(0.3)  # let anything still scheduled land
                    return
                if time.time() > deadline:
                    return
                time.sleep(0.1)

        def failed_task(self, wf_ex_id, name):
            with db_api.transaction():
                wf_ex = db_api.get_workflow_execution(wf_ex_id)
                found = [t for t in wf_ex.task_executions if t.name == name]
                found.sort(key=lambda t: t.created_at)
                return found[-1].id

        def run_case(self, case):
            # All cases share the default namespace, as a plain deployment
            # would (texts name it): each case's definition replaces the last.
            # The spec cache is keyed by (definition id, updated_at), and
            # updated_at has whole seconds: drop it, or an update in the same
            # second would run the previous case's workflow.
            with spec_parser._WF_DEF_CACHE_LOCK:
                spec_parser._WF_DEF_CACHE.clear()
            ns = ""
            try:
                wf_service.create_workflows(case["workflow"])
            except exc.DBDuplicateEntryError:
                wf_service.update_workflows(case["workflow"])
            wf_name = next(k for k in yaml.safe_load(case["workflow"]) if k not in ("version", "name", "description"))
            params = dict(case.get("params") or {})  # e.g. a reverse workflow's task_name
            if case.get("env"):
                params["env"] = case["env"]
            wf_ex = self.engine.start_workflow(wf_name, wf_namespace=ns, wf_input=case.get("input") or {}, **params)
            self.wait(wf_ex.id)
            before = []  # the outcome as it stood before each step
            for step in case.get("steps") or []:
                before.append(snapshot(wf_ex.id))
                if "resume" in step:
                    self.engine.resume_workflow(wf_ex.id)
                elif "skip" in step:
                    self.engine.rerun_workflow(self.failed_task(wf_ex.id, step["skip"]), skip=True)
                elif "rerun" in step:
                    self.engine.rerun_workflow(self.failed_task(wf_ex.id, step["rerun"]))
                else:
                    raise ValueError(f"unknown step {step}")
                self.wait(wf_ex.id)
            outcome = snapshot(wf_ex.id)
            if before:
                outcome["before_steps"] = before
            return outcome

        def test_record(self):
            for case in cases:
                try:
                    results[case["name"]] = self.run_case(case)
                except Exception as e:  # noqa: BLE001 - recorded as the outcome
                    results[case["name"]] = {"start_error": f"{type(e).__name__}: {e}"}
                print(case["name"], json.dumps(results[case["name"]], default=str)[:300], flush=True)

    suite = unittest.TestSuite([Recorder("test_record")])
    res = unittest.TextTestRunner(verbosity=1).run(suite)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True, default=str)
    return 0 if res.wasSuccessful() else 1


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--inner":
        code = inner(sys.argv[2], sys.argv[3], sys.argv[4:])
        sys.stdout.flush()
        os._exit(code)  # the engine's threads would keep the process alive
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(outer(sys.argv[1], sys.argv[2:]))
