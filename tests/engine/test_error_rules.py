"""Two rules about errors and locks, checked by reading the source:

- a lock is taken in a statement of its own, never inside a boolean
  expression, where ``a and lock()`` takes it only sometimes and a reader
  can not see it;
- no door turns a ``KeyError`` (or any lookup failure) into a 404: a
  missing row is ``NotFound`` from a selector, and a KeyError inside the
  engine is a defect that must show as one.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APPS = ["core", "workflows", "webhooks", "tracker", "approvals", "ops", "api", "config"]
LOCKS = {"select_for_update", "lock_execution", "_lock", "_locked", "_locked_action", "lock_rows"}
NOT_FOUND = {"NotFound", "Http404", "HttpResponseNotFound", "get_object_or_404"}
LOOKUP_ERRORS = {"KeyError", "LookupError", "IndexError"}


def sources():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in rel:
                yield rel, ast.parse(path.read_text(), rel)


def _called(node: ast.AST) -> set[str]:
    names = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
    return names


def locks_in_boolean_expressions(tree: ast.AST) -> list[int]:
    return sorted({node.lineno for node in ast.walk(tree) if isinstance(node, ast.BoolOp) and _called(node) & LOCKS})


def lookup_errors_made_404(tree: ast.AST) -> list[int]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ExceptHandler) or node.type is None:
            continue
        caught = {getattr(n, "id", getattr(n, "attr", "")) for n in ast.walk(node.type)}
        if caught & LOOKUP_ERRORS:
            said = _called(ast.Module(body=node.body, type_ignores=[])) | {
                getattr(n, "id", "") for b in node.body for n in ast.walk(b) if isinstance(n, ast.Name)
            }
            if said & NOT_FOUND:
                found.append(node.lineno)
    return found


def test_no_lock_is_taken_inside_a_boolean_expression():
    hidden = {rel: lines for rel, tree in sources() if (lines := locks_in_boolean_expressions(tree))}
    assert hidden == {}


def test_no_lookup_error_becomes_a_404():
    hidden = {rel: lines for rel, tree in sources() if (lines := lookup_errors_made_404(tree))}
    assert hidden == {}


def test_the_checks_see_what_they_look_for():
    bad = ast.parse(
        "def f(a):\n"
        "    return a.ready and rows.lock_execution(a.id)\n"
        "def g(d, k):\n"
        "    try:\n"
        "        return d[k]\n"
        "    except KeyError:\n"
        "        raise NotFound('x', k)\n"
    )
    assert locks_in_boolean_expressions(bad) == [2]
    assert lookup_errors_made_404(bad) == [6]
    good = ast.parse("def f(a):\n    row = rows.lock_execution(a.id)\n    return row.ready and a.ok\n")
    assert locks_in_boolean_expressions(good) == []
