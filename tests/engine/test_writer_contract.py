"""Each model has its writers, and only they change its rows: the rest of
Gust reads through selectors (workflows/selectors.py) or the owning app's
functions and writes by calling its services. The table below is the
contract (ARCHITECTURE.md says the same in words); a write through the ORM
from any other module fails this test. It reads the source: a write is
``<Model>.objects....create/update/delete/bulk_*/get_or_create/update_or_create(``."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ["core", "workflows", "webhooks", "tracker", "approvals", "ops", "api", "config"]

WRITERS = {
    # workflows: executions change only through the engine's service
    "WorkflowExecution": {"workflows/services.py", "workflows/retention.py"},  # retention deletes finished ones
    "TaskExecution": {"workflows/services.py"},
    "ActionExecution": {"workflows/services.py", "workflows/dispatch.py"},  # dispatch: a lost job's requeue mark
    "Timer": {"workflows/services.py"},
    "WorkflowDefinition": {"workflows/services.py", "workflows/books.py"},
    "Workbook": {"workflows/books.py"},
    "ActionDefinition": {"workflows/books.py"},
    "Environment": {"workflows/environments.py"},
    "CronTrigger": {"workflows/triggers.py"},
    "EngineProcess": {"workflows/lifecycle.py"},
    "ShutdownLock": {"workflows/lifecycle.py"},
    # webhooks
    "WebhookDelivery": {"webhooks/notifier.py"},
    # tracker: the work list belongs to the tracker's services and its loop
    "TrackedAction": {"tracker/services.py", "tracker/runner.py"},
    "TrackerProcess": {"tracker/runner.py"},
    "CallbackInbox": {"tracker/services.py"},
    "Completion": {"tracker/latency.py"},
    "CompletionBucket": {"tracker/latency.py"},
    "BenchmarkRun": {"tracker/benchmarks.py"},  # the comparison page's benchmark button
    # approvals and the operator console
    "Approval": {"approvals/services.py"},
    "ApprovalResponse": {"approvals/services.py"},
    "Assignment": {"approvals/services.py"},
    "OperatorAction": {"ops/services.py"},
    # API tokens (Django REST framework's model): the Keystone stand-in and the command that makes one
    "Token": {"api/identity.py", "workflows/management/commands/api_token.py"},
}
WRITE_METHODS = {"create", "update", "delete", "bulk_create", "bulk_update", "get_or_create", "update_or_create"}


def _manager_model(node: ast.AST) -> str | None:
    """``X`` of a chain that starts at ``X.objects`` (``X.objects.filter(...).only(...)``)."""
    while True:
        if isinstance(node, ast.Attribute):
            if node.attr == "objects" and isinstance(node.value, ast.Name) and node.value.id[:1].isupper():
                return node.value.id
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        else:
            return None


def model_calls(source: str, methods: set[str] | None) -> set[str]:
    """The models whose manager chain ends in one of ``methods`` (any call: None)
    in this source, however the chain is split over lines."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and (methods is None or node.attr in methods):
            model = _manager_model(node.value if methods is not None else node)
            if model:
                found.add(model)
    return found


def writes() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for model in model_calls(path.read_text(), WRITE_METHODS):
                found.setdefault(model, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_model_is_written_only_by_its_writers():
    strays = {model: sorted(files - WRITERS.get(model, set())) for model, files in writes().items()}
    assert {model: files for model, files in strays.items() if files} == {}


def test_the_contract_sees_the_writes():
    split = (
        "rows = (\n    Approval.objects.filter(id=1)\n    .update(state='x')\n)\nTimer.objects.filter(a=1).first()\n"
    )
    assert model_calls(split, WRITE_METHODS) == {"Approval"}
    assert model_calls(split, None) == {"Approval", "Timer"}
    found = writes()
    assert "workflows/services.py" in found["TaskExecution"]
    assert "approvals/services.py" in found["Approval"]


# --- and the doors read through selectors -------------------------------------
# A page, an API view, a template tag or the admin asks a selector
# (workflows/selectors.py, tracker/selectors.py, approvals/selectors.py,
# ops/selectors.py) for its rows, so a list query is written once and every
# door shows the same rows. Services and the owning modules read as they write.
DOORS = [
    "api/",
    "workflows/views.py",
    "workflows/book_views.py",
    "workflows/resource_views.py",
    "workflows/tree.py",
    "workflows/live.py",
    "workflows/admin.py",
    "ops/views.py",
    "ops/waiting.py",
    "ops/metrics.py",
    "ops/templatetags/",
    "ops/admin.py",
    "tracker/views.py",
    "tracker/admin.py",
    "approvals/views.py",
    "approvals/admin.py",
    "webhooks/admin.py",
]
# The API's token lookups are Django REST framework's model, read where the token is checked.
DOOR_READS_ALLOWED = {("Token", "api/identity.py")}


def door_reads() -> set[tuple[str, str]]:
    found = set()
    for door in DOORS:
        paths = (ROOT / door).rglob("*.py") if door.endswith("/") else [ROOT / door]
        for path in paths:
            found.update((model, str(path.relative_to(ROOT))) for model in model_calls(path.read_text(), None))
    return found


def test_the_doors_read_through_selectors():
    assert sorted(door_reads() - DOOR_READS_ALLOWED) == []


def test_the_door_contract_sees_the_doors():
    assert all((ROOT / door).exists() for door in DOORS)
    assert ("Token", "api/identity.py") in door_reads()
