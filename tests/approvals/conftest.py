"""Approval scenarios: a workflow that asks people, and the people."""

import pytest
import yaml
from django.contrib.auth.models import Group, User
from django.core import mail

from workflows import services
from workflows.models import TaskExecution, WorkflowExecution

FORM = {
    "type": "object",
    "required": ["amount"],
    "properties": {
        "amount": {"type": "integer", "title": "Amount", "minimum": 1, "maximum": 5000},
        "reason": {"type": "string", "title": "Reason", "default": "ok"},
        "urgent": {"type": "boolean", "title": "Urgent"},
    },
}


def approval_workflow(name: str = "expense", **approval_input) -> str:
    """A workflow whose first task asks for an approval and branches on it."""
    params = {"title": "Pay <% $.amount %> EUR?", "assignees": ["alice", "bob"], "form": FORM, **approval_input}
    return yaml.safe_dump(
        {
            "version": "2.0",
            name: {
                "input": [{"amount": 100}],
                "tasks": {
                    "ask": {
                        "action": "gust.approval",
                        "input": params,
                        "publish": {"decision": "<% task().result %>"},
                        "on-success": [
                            {"pay": "<% task().result.approved %>"},
                            {"refuse": "<% not task().result.approved %>"},
                        ],
                    },
                    "pay": {"action": "std.echo output=paid"},
                    "refuse": {"action": "std.echo output=refused"},
                },
            },
        },
        sort_keys=False,
    )


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Django's default hasher costs ~0.3 s per password: too slow for fixtures.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def people(db):
    finance = Group.objects.create(name="finance")
    made = {}
    for name in ("alice", "bob", "carol", "dave", "erin"):
        made[name] = User.objects.create_user(name, f"{name}@example.com", "pw")
    made["carol"].groups.add(finance)
    made["dave"].groups.add(finance)
    made["finance"] = finance
    return made


@pytest.fixture
def start(db):
    """start(**approval_input) -> execution of a fresh workflow asking for approval."""
    counter = iter(range(1000))

    def _start(workflow_input=None, **approval_input):
        name = f"expense{next(counter)}"
        services.save_workflows(approval_workflow(name, **approval_input))
        return services.start_execution(name, workflow_input or {})

    return _start


def tasks_of(execution) -> dict[str, str]:
    """{task name: state} of the latest execution of each task."""
    return {t.name: t.state for t in TaskExecution.objects.filter(workflow_execution_id=execution.id).order_by("seq")}


def reload(execution) -> WorkflowExecution:
    return WorkflowExecution.objects.get(id=execution.id)


@pytest.fixture
def outbox(settings):
    """Mail sent through Django's mailers, collected (approvals print to the console by default)."""
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    mail.outbox = []
    return mail.outbox
