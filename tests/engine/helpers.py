"""Drive the pure engine through whole scenarios without a database."""

import itertools

from core import engine
from core.lang.spec import for_target, parse_definition


class Harness:
    """Keeps the snapshot between events, as the service does with rows."""

    def __init__(self, yaml_text: str, workflow_input: dict | None = None, params: dict | None = None):
        specs = parse_definition(yaml_text)
        self.spec = next(iter(specs.values()))
        if self.spec.reverse:
            self.spec = for_target(self.spec, (params or {}).get("task_name"))
        counter = itertools.count(1)
        self.make_id = lambda: f"id{next(counter)}"
        self.snap = engine.Snapshot(
            id="wf1",
            workflow_name=self.spec.name,
            state="IDLE",
            input=engine.check_input(self.spec, workflow_input or {})[0],
            params=params or {},
        )
        self.decisions: list[engine.Decision] = []

    def send(self, event) -> engine.Decision:
        d = engine.handle(self.spec, self.snap, event, self.make_id)
        self.snap = d.snapshot
        self.decisions.append(d)
        return d

    def start(self):
        return self.send(engine.Start())

    @property
    def state(self):
        return self.snap.state

    def task(self, name):
        found = [t for t in self.snap.tasks if t.name == name]
        assert found, f"no task {name}"
        return found[-1]

    def tasks(self, name):
        return [t for t in self.snap.tasks if t.name == name]

    def running_action(self, task_name):
        return next(a for a in self.task(task_name).actions if a.state == "RUNNING")

    def complete(self, task_name, result=None, state="SUCCESS"):
        return self.send(engine.ActionCompleted(self.running_action(task_name).id, state, result))

    def trace(self):
        return [(e.kind, e.task_name) for d in self.decisions for e in d.trace]
