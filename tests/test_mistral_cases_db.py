"""The Mistral 23 comparison cases that need the database (sub-workflows
run through the services): the same recorded outcomes as
tests/engine/test_mistral_cases.py, for the root execution."""

import pytest
import yaml

from tests.engine.test_mistral_cases import RECORDED, _params, comparable
from workflows import services
from workflows.models import TaskExecution, WorkflowExecution

pytestmark = pytest.mark.django_db(transaction=True)


def run_through_services(case: dict) -> dict:
    services.save_workflows(case["workflow"])
    name = next(k for k in yaml.safe_load(case["workflow"]) if k not in ("version", "name"))
    params = dict(case.get("params") or {})
    if case.get("env"):
        params["env"] = case["env"]
    ex = services.start_execution(name, case.get("input") or {}, params)
    ex = WorkflowExecution.objects.get(id=ex.id)
    return {
        "state": ex.state,
        "state_info": ex.state_info,
        "output": ex.output,
        "tasks": [
            {"name": t.name, "state": t.state, "state_info": t.state_info, "published": t.published, "result": t.result}
            for t in TaskExecution.objects.filter(workflow_execution=ex).order_by("seq")
        ],
    }


@pytest.mark.parametrize("case", list(_params(db=True)))
def test_gust_does_what_mistral_did_with_sub_workflows(case):
    assert comparable(run_through_services(case)) == comparable(RECORDED[case["name"]])
