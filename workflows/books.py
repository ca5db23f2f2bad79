"""Workbooks and ad-hoc action definitions: the only writer of their rows
(and of the workflow rows a workbook owns), and the lookups the engine and
run-action use.

Each change is one transaction: parse and validate first (nothing is
touched for bad input), then lock and write, so a refused change leaves
nothing half-done. As Mistral's services/workbooks.py, a workbook's
workflows and actions are stored as ``<workbook>.<name>`` in the
workbook's namespace; unlike Mistral, which only creates or updates them,
an update also deletes the ones the new text no longer has, and deleting a
workbook deletes them (Mistral leaves them behind).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core.lang import spec as lang
from core.lang import workbook as books_lang
from core.lang.limits import Limits
from workflows import conf
from workflows.errors import Conflict, InvalidDefinition, InvalidInput, NotFound
from workflows.models import ActionDefinition, Workbook, WorkflowDefinition

# --- parsing ------------------------------------------------------------------


def _parse[T](parse: Callable[[str, Limits], T], text: str) -> T:
    try:
        return parse(text, conf.limits())
    except lang.DefinitionError as exc:
        raise InvalidDefinition(exc.message, exc.as_list()) from exc


def _validate(parse: Callable[[str, Limits], Any], text: str) -> tuple[bool, str | None, list[dict]]:
    try:
        parse(text, conf.limits())
    except lang.DefinitionError as exc:
        return False, exc.message, exc.as_list()
    return True, None, []


def validate_workbook(text: str) -> tuple[bool, str | None, list[dict]]:
    """(valid, error message, errors with paths); never raises for bad input."""
    return _validate(books_lang.parse_workbook, text)


def validate_actions(text: str) -> tuple[bool, str | None, list[dict]]:
    return _validate(books_lang.parse_actions, text)


def check_namespace(namespace: str) -> str:
    """A namespace as given (query parameter or body), bounded as stored."""
    if not isinstance(namespace, str) or len(namespace) > 255:
        raise InvalidInput("namespace must be a string of at most 255 characters")
    return namespace


# --- workbooks -------------------------------------------------------------------


def find_workbook(name: str, namespace: str = "") -> Workbook:
    wb = Workbook.objects.filter(name=name, namespace=namespace).first()
    if wb is None:
        raise NotFound("Workbook", f"{name}, namespace={namespace}", key="name")
    return wb


def _duplicate(kind: str, name: str, namespace: str) -> Conflict:
    return Conflict(f"Duplicate entry for {kind} ['name', 'namespace', 'project_id']: {name}, {namespace}, None")


@transaction.atomic
def save_workbook(text: str, namespace: str = "", *, update: bool = False) -> Workbook:
    """Create (or, with ``update``, replace) a workbook with its workflows and
    actions. Raises InvalidDefinition before touching anything; Conflict when
    creating a workbook that exists, or when one of its qualified names is
    taken by a workflow or action that is not the workbook's; NotFound when
    updating one that does not exist. Nothing is stored when it raises."""
    spec = _parse(books_lang.parse_workbook, text)
    existing = Workbook.objects.select_for_update().filter(name=spec.name, namespace=namespace).first()
    if existing is None and update:
        raise NotFound("Workbook", f"{spec.name}, namespace={namespace}", key="name")
    if existing is not None and not update:
        raise _duplicate("WorkbookDefinition", spec.name, namespace)
    fields = dict(definition=text, spec=spec.raw, description=spec.description, tags=list(spec.tags))
    if existing is None:
        try:
            with transaction.atomic():
                wb = Workbook.objects.create(name=spec.name, namespace=namespace, **fields)
        except IntegrityError as exc:  # a concurrent create of the same name
            raise _duplicate("WorkbookDefinition", spec.name, namespace) from exc
    else:
        wb = existing
        for key, value in fields.items():
            setattr(wb, key, value)
        wb.updated_at = timezone.now()
        wb.save()
    try:
        with transaction.atomic():
            _replace(WorkflowDefinition, wb, {n: _workflow_fields(wf) for n, wf in spec.workflows.items()})
            _replace(
                ActionDefinition,
                wb,
                {n: _action_fields(a, books_lang.action_text(n, a.raw)) for n, a in spec.actions.items()},
            )
    except IntegrityError as exc:  # a concurrent create of one of its names
        raise Conflict(f"A workflow or action of workbook {spec.name} was created meanwhile; try again") from exc
    return wb


def _owned_or_free(
    model: type[WorkflowDefinition] | type[ActionDefinition], wb: Workbook, names: Iterable[str]
) -> dict:
    """The rows of ``names`` in the workbook's namespace, locked; Conflict
    when one belongs to no workbook or another one."""
    rows = {r.name: r for r in model.objects.select_for_update().filter(namespace=wb.namespace, name__in=list(names))}
    for row in rows.values():
        if row.workbook_name != wb.name:
            kind = "Workflow" if model is WorkflowDefinition else "Action"
            owner = f"workbook {row.workbook_name}" if row.workbook_name else "no workbook"
            raise Conflict(
                f"{kind} {row.name} exists in namespace '{wb.namespace}' and belongs to {owner}, "
                f"not to workbook {wb.name}; delete or rename it first"
            )
    return rows


def _workflow_fields(wf: lang.WorkflowSpec) -> dict:
    definition = lang.workflow_text(wf.name, wf.raw)
    return dict(
        definition=definition,
        spec=wf.raw,
        checksum=lang.checksum(definition),
        tags=list(wf.tags),
        input=wf.input_signature(),
    )


def _replace(model: type[WorkflowDefinition] | type[ActionDefinition], wb: Workbook, items: dict[str, dict]) -> None:
    """Make the workbook's rows of ``model`` exactly ``items`` (qualified
    name -> field values): update those it has, create the new ones, delete
    the ones it no longer has."""
    rows = _owned_or_free(model, wb, items)
    model.objects.filter(namespace=wb.namespace, workbook_name=wb.name).exclude(name__in=list(items)).delete()
    now = timezone.now()
    for name, fields in items.items():
        fields = {**fields, "scope": wb.scope, "workbook_name": wb.name}
        row = rows.get(name)
        if row is None:
            model.objects.create(name=name, namespace=wb.namespace, **fields)
        else:
            model.objects.filter(pk=row.pk).update(updated_at=now, **fields)


@transaction.atomic
def delete_workbook(name: str, namespace: str = "") -> None:
    """Delete the workbook with its workflows and actions; NotFound when it does not exist."""
    wb = Workbook.objects.select_for_update().filter(name=name, namespace=namespace).first()
    if wb is None:
        raise NotFound("Workbook", f"{name}, namespace={namespace}", key="workbook_name")
    WorkflowDefinition.objects.filter(namespace=namespace, workbook_name=name).delete()
    ActionDefinition.objects.filter(namespace=namespace, workbook_name=name).delete()
    wb.delete()


# --- ad-hoc actions -------------------------------------------------------------


def _action_fields(action: books_lang.ActionSpec, definition: str) -> dict:
    return dict(
        definition=definition,
        spec=action.raw,
        description=action.description or "",
        tags=list(action.tags),
        input=action.input_signature(),
    )


@transaction.atomic
def save_actions(
    text: str, namespace: str = "", *, update: bool = False, identifier: str | None = None
) -> list[ActionDefinition]:
    """Create (or, with ``update``, update) every ad-hoc action in ``text``,
    as Mistral's services/adhoc_actions.py. ``identifier`` (update only) names
    the one action to update, by name or id; then the text must hold one
    action. Raises InvalidDefinition, Conflict (creating a name that
    exists, or one that a workbook owns) or NotFound (updating one that does
    not exist); nothing is stored when it raises."""
    specs = _parse(books_lang.parse_actions, text)
    if identifier and len(specs) > 1:
        raise InvalidInput(
            f"More than one actions are not supported for update with identifier. [identifier: {identifier}]"
        )
    saved = []
    for name, action in specs.items():
        fields = _action_fields(action, text)
        if update:
            row = _locked_action(identifier or name, namespace)
            if row.workbook_name:
                raise Conflict(f"Action {row.name} belongs to workbook {row.workbook_name}; update the workbook")
            for key, value in fields.items():
                setattr(row, key, value)
            row.name, row.updated_at = name, timezone.now()
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError as exc:
                raise _duplicate("ActionDefinition", name, namespace) from exc
        else:
            try:
                with transaction.atomic():
                    row = ActionDefinition.objects.create(name=name, namespace=namespace, **fields)
            except IntegrityError as exc:
                raise _duplicate("ActionDefinition", name, namespace) from exc
        saved.append(row)
    return saved


def _action_query(identifier: str, namespace: str) -> QuerySet[ActionDefinition]:
    # As Mistral's _get_db_object_by_name_and_namespace_or_id: an id matches
    # in any namespace, a name in the namespace given.
    return ActionDefinition.objects.filter(Q(id=identifier) | Q(name=identifier, namespace=namespace))


def _locked_action(identifier: str, namespace: str) -> ActionDefinition:
    row = _action_query(identifier, namespace).select_for_update().first()
    if row is None:
        raise NotFound("Action", f"{identifier}, namespace={namespace}", key="name")
    return row


def get_action_definition(identifier: str, namespace: str = "") -> ActionDefinition | None:
    return _action_query(identifier, namespace).first()


@transaction.atomic
def delete_action(identifier: str, namespace: str = "") -> None:
    """Delete a stand-alone ad-hoc action. NotFound; Conflict for one a
    workbook owns (delete or update the workbook)."""
    row = _locked_action(identifier, namespace)
    if row.workbook_name:
        raise Conflict(f"Action {row.name} belongs to workbook {row.workbook_name}; update or delete the workbook")
    row.delete()


def find_action(name: str, namespace: str = "") -> books_lang.ActionSpec | None:
    """The ad-hoc action stored under exactly ``name`` in ``namespace`` (as
    Mistral's load_action_definition), or None: the engine's
    :data:`core.adhoc.Lookup`, and run-action's, beside
    ``core.actions.get`` for the built-ins (``core.adhoc.find``
    does both, with a workbook's short names). One indexed query, not
    cached: every process would have to hear of a change."""
    row = ActionDefinition.objects.filter(name=name, namespace=namespace).values_list("spec", flat=True).first()
    return books_lang.build_action(name, row) if row is not None else None


# --- workflows by name ----------------------------------------------------------


def resolve_workflow(name: str, namespace: str = "", workbook: str | None = None) -> WorkflowDefinition:
    """The workflow a task's ``workflow: name`` starts, as Mistral's
    engine/utils.py resolve_workflow_definition: inside a workbook's
    workflow ``<workbook>.<name>`` first, then ``name``; each looked up in
    ``namespace`` first, then the default namespace ''
    (load_workflow_definition). Raises NotFound with Mistral's wording."""
    for candidate in books_lang.qualified_candidates(name, workbook):
        found = sorted(
            WorkflowDefinition.objects.filter(name=candidate, namespace__in={namespace, ""}),
            key=lambda w: w.namespace != namespace,
        )
        if found:
            return found[0]
    raise NotFound("Workflow", f"{name}] [namespace={namespace}", key="name")
