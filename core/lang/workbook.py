"""Mistral v2 workbooks and ad-hoc action definitions: parse and validate.

A workbook is one YAML document with ``version``, ``name`` and optionally
``description``, ``tags``, ``workflows:`` and ``actions:`` (Mistral's
``lang/v2/workbook.py``); its workflows and actions are stored under
``<workbook>.<name>``. An action file (``POST /v2/actions``) holds
``version`` and one or more ad-hoc actions by name (``lang/v2/actions.py``).
An ad-hoc action names a ``base`` action (``std.echo output=...`` inline
parameters allowed), ``base-input`` built from its own ``input`` (names,
or names with defaults), and an ``output`` expression over the base's result.

Every error comes with its path, all of them in one answer, as for workflow
files (``workflows.wf1.tasks.t1.on-success[0]: unknown task 't2'``).
No Django import.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import yaml

from core import actions
from core.lang import expressions
from core.lang import spec as lang
from core.lang.limits import DEFAULT, Limits

# Mistral's NON_VERSION_WORD_REGEX: the names of a workbook's workflows and actions.
_WORD = re.compile(r"^[\w-]+$")
# Mistral's action class label for ad-hoc actions, in its "Invalid input" message.
ADHOC_CLASS = "mistral.actions.adhoc.AdHocAction"

_NONEMPTY_STRING = {"type": "string", "minLength": 1}
_TAGS = {"type": "array", "items": {"type": "string", "minLength": 1}, "uniqueItems": True}
ACTION_SCHEMA = {
    "type": "object",
    "properties": {
        "base": _NONEMPTY_STRING,
        "base-input": {"type": "object", "minProperties": 1},
        "input": {
            "type": "array",  # a name given twice is reported by _action_errors, with its index
            "items": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "object", "minProperties": 1, "maxProperties": 1},
                ]
            },
        },
        "output": {},
        "description": _NONEMPTY_STRING,
        "tags": _TAGS,
        "name": {"type": "string"},
        "version": {},
    },
    "required": ["base"],
    "additionalProperties": False,
}
_ACTION_VALIDATOR = jsonschema.Draft202012Validator(ACTION_SCHEMA)
_WORKBOOK_KEYS = ("version", "name", "description", "tags", "workflows", "actions")


@dataclass(frozen=True)
class ActionSpec:
    """One ad-hoc action. ``name`` is the stored name (``wb.name`` in a
    workbook); ``base_input`` holds the base's inline parameters merged
    under ``base-input``, as Mistral's ActionSpec builds it."""

    name: str
    base: str
    base_input: dict = field(default_factory=dict)
    input: tuple[tuple[str, Any], ...] = ()  # (name, default or actions.REQUIRED)
    output: Any = None
    description: str = ""
    tags: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def input_signature(self) -> str:
        """Mistral's ``input`` column: ``s1="a", s2`` (json of each default)."""
        return ", ".join(n if d is actions.REQUIRED else f"{n}={json.dumps(d)}" for n, d in self.input)

    def input_errors(self, given: dict) -> str | None:
        """Mistral's check_parameters of the ad-hoc action's own input: the
        message when a required name is missing or an unknown one is given."""
        names = [n for n, _ in self.input]
        missing = [n for n, d in self.input if d is actions.REQUIRED and n not in given]
        unexpected = [k for k in given if k not in names]
        if not (missing or unexpected):
            return None
        msg = f"Invalid input [name={self.name}, class={ADHOC_CLASS}"
        if missing:
            msg += f", missing={missing}"
        if unexpected:
            msg += f", unexpected={unexpected}"
        return msg + "]"


def build_action(name: str, raw: dict) -> ActionSpec:
    """An action spec from a validated mapping."""
    base, inline, _ = actions.parse_action_line(raw["base"])
    return ActionSpec(
        name=name,
        base=base,
        base_input=lang.merge_dicts(dict(raw.get("base-input") or {}), inline),
        input=lang.parse_input_params(raw.get("input")),
        output=raw.get("output"),
        description=raw.get("description", ""),
        tags=tuple(raw.get("tags") or ()),
        raw=raw,
    )


@dataclass(frozen=True)
class WorkbookSpec:
    name: str
    description: str
    tags: tuple[str, ...]
    workflows: dict[str, lang.WorkflowSpec]  # by qualified name, wb.wf, in file order
    actions: dict[str, ActionSpec]  # by qualified name, wb.action
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def short_names(self) -> dict[str, str]:
        """Qualified workflow name -> the name written in the workbook."""
        return {q: q[len(self.name) + 1 :] for q in self.workflows}


def qualified_candidates(name: str, workbook: str | None) -> list[str]:
    """The names a task's ``action:`` or ``workflow:`` is looked up by, in
    order, as Mistral does at run time (engine/tasks.py
    ``_get_action_descriptor``, engine/utils.py ``resolve_workflow_definition``):
    inside a workbook's workflow ``<workbook>.<name>`` first, then the name
    as written."""
    return [f"{workbook}.{name}", name] if workbook else [name]


# --- validation ------------------------------------------------------------------


def _action_errors(path: str, name: str, raw: Any) -> list[tuple[str, str]]:
    errors = lang.schema_errors(path, raw, _ACTION_VALIDATOR)
    if errors or not isinstance(raw, dict):
        return errors
    base, inline, err = actions.parse_action_line(raw["base"])
    if err:
        errors.append((f"{path}.base", err))
    if base == name:
        errors.append(
            (
                f"{path}.base",
                f"Found a cycle in an ad-hoc action chain [action_name={name}, duplicate_action_name={name}]",
            )
        )
    seen = set()
    for i, (pname, _) in enumerate(lang.parse_input_params(raw.get("input"))):
        if pname in seen:
            errors.append((f"{path}.input[{i}]", f"input '{pname}' is declared twice"))
        seen.add(pname)
    errors += expressions.expression_errors(inline, f"{path}.base")
    errors += expressions.expression_errors(raw.get("base-input"), f"{path}.base-input")
    errors += expressions.expression_errors(raw.get("output"), f"{path}.output")
    return errors


def _cycle_errors(specs: dict[str, ActionSpec], paths: dict[str, str]) -> list[tuple[str, str]]:
    """A chain of bases that comes back to where it started, among the
    actions uploaded together (the only ones whose bases are certain at
    upload; Mistral finds every cycle when the action runs)."""
    errors = []
    for name, spec in specs.items():
        seen, base = {name}, spec.base
        while base in specs and base not in seen:
            seen.add(base)
            base = specs[base].base
        if base == name and spec.base != name:  # a self-base is reported by _action_errors
            errors.append(
                (
                    f"{paths[name]}.base",
                    f"Found a cycle in an ad-hoc action chain [action_name={name}, duplicate_action_name={name}]",
                )
            )
    return errors


def _action_name_errors(name: str, path: str) -> list[tuple[str, str]]:
    errors = lang.name_errors(name, "action", path)
    if not errors and actions.get(name) is not None:
        errors.append((path, f"Attempt to modify a system action: {name}"))
    return errors


def _section(doc: dict, key: str) -> tuple[dict, list[tuple[str, str]]]:
    """A workbook's ``workflows`` or ``actions``: a non-empty mapping of
    words (``version`` inside it is allowed and ignored, as Mistral's)."""
    if key not in doc:
        return {}, []
    value = doc[key]
    if not isinstance(value, dict):
        return {}, [(key, f"must be a mapping of names, got {type(value).__name__}")]
    if not value:
        return {}, [(key, "must not be empty")]
    items, errors = {}, []
    for name, body in value.items():
        if name == "version":
            errors += [(f"{key}.version", e) for _, e in lang.version_errors({"version": body})]
            continue
        if not _WORD.match(name):
            errors.append((f"{key}.{name}", "a name may hold only letters, digits, '_' and '-'"))
            continue
        items[name] = body
    return items, errors


def parse_workbook(text: str, limits: Limits = DEFAULT) -> WorkbookSpec:
    """Parse and validate a workbook; raise DefinitionError listing every error."""
    doc = lang.load_yaml(text, limits, unique_keys=True)
    if not isinstance(doc, dict):
        raise lang.DefinitionError([("", "a workbook must be a mapping with 'version', 'name' and workflows")])
    errors = lang.version_errors(doc)
    errors += [(k, "unknown keyword") for k in doc if k not in _WORKBOOK_KEYS]
    name = doc.get("name")
    if "name" not in doc:
        errors.append(("name", "'name' is a required property"))
    else:
        errors += lang.name_errors(name, "workbook", "name")
        if isinstance(name, str) and "." in name:
            errors.append(("name", "a workbook name must not contain '.': it prefixes its workflows and actions"))
    if "description" in doc and (not isinstance(doc["description"], str) or not doc["description"]):
        errors.append(("description", "must be a non-empty string"))
    errors += lang.schema_errors("tags", doc.get("tags", []), jsonschema.Draft202012Validator(_TAGS))
    workflows, wf_errors = _section(doc, "workflows")
    actions_raw, act_errors = _section(doc, "actions")
    errors += wf_errors + act_errors
    good_name = isinstance(name, str) and bool(name)
    for short, raw in workflows.items():
        path = f"workflows.{short}"
        if good_name:
            errors += lang.name_errors(f"{name}.{short}", "workflow", path)
        errors += lang.workflow_errors(path, raw)
    built_actions: dict[str, ActionSpec] = {}
    paths = {}
    for short, raw in actions_raw.items():
        path, qualified = f"actions.{short}", f"{name}.{short}"
        if good_name:
            errors += _action_name_errors(qualified, path)
        own = _action_errors(path, qualified, raw)
        errors += own
        if not own:
            built_actions[qualified] = build_action(qualified, raw)
            paths[qualified] = path
    errors += _cycle_errors(built_actions, paths)
    if errors:
        raise lang.DefinitionError(errors)
    return WorkbookSpec(
        name=str(name),
        description=doc.get("description", ""),
        tags=tuple(doc.get("tags") or ()),
        workflows={f"{name}.{s}": lang.build_workflow(f"{name}.{s}", raw) for s, raw in workflows.items()},
        actions=built_actions,
        raw=doc,
    )


def parse_actions(text: str, limits: Limits = DEFAULT) -> dict[str, ActionSpec]:
    """Parse a file of stand-alone ad-hoc actions (``version`` and actions by
    name); raise DefinitionError listing every error."""
    doc = lang.load_yaml(text, limits, unique_keys=True)
    if not isinstance(doc, dict):
        raise lang.DefinitionError([("", "an action file must be a mapping with 'version' and actions")])
    errors = lang.version_errors(doc)
    raws = {k: v for k, v in doc.items() if k != "version"}
    if not raws:
        errors.append(("", "no action in the file"))
    built, paths = {}, {}
    for name, raw in raws.items():
        bad = _action_name_errors(name, name)
        own = bad or _action_errors(name, name, raw)
        errors += own
        if not own:
            built[name], paths[name] = build_action(name, raw), name
    errors += _cycle_errors(built, paths)
    if errors:
        raise lang.DefinitionError(errors)
    return built


def action_text(name: str, raw: dict) -> str:
    """One action of a file as a stand-alone definition."""
    return yaml.safe_dump({"version": "2.0", name: raw}, sort_keys=False)
