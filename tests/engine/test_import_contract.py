"""The pure core (language, engine, states, action table, graph and timeline layout) has
no Django in it, so its tests run in milliseconds and it can be reasoned
about alone. This test is the contract: a new import of Django, of the ORM
or of a Django-side Gust module into the core fails CI."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The pure core, and the pure parts of the apps above it (tested without a database).
PURE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py")) + ["tracker/advice.py"]
PURE_MODULES = {p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in PURE}
FORBIDDEN_TOP = {
    "django",
    "rest_framework",
    "django_q",
    "drf_spectacular",
    "workflows",
    "webhooks",
    "tracker",
    "approvals",
    "ops",
    "api",
    "bench",
    "config",
}


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_the_pure_core_imports_nothing_from_django_or_the_django_side():
    offending = {}
    for rel in PURE:
        for name in imported_modules(ROOT / rel):
            if name.split(".")[0] in FORBIDDEN_TOP:
                offending.setdefault(rel, []).append(name)
    assert offending == {}


def test_importing_the_pure_core_loads_no_django():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in sorted(PURE_MODULES))
        + "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'django_q'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


# --- the layers of the whole house ------------------------------------------------
# Each package may import only from the packages below it (and from itself).
# The order is the design (README, "Design"): the pure core at the bottom,
# the benchmarks at the top, imported by nothing.
LAYERS = ["core", "workflows", "webhooks", "tracker", "approvals", "ops", "api", "config", "bench"]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _gust_modules() -> dict[str, Path]:
    found = {}
    for top in LAYERS:
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the Gust modules it imports, anywhere in the file (a function's
    import counts as much as one at the top)."""
    modules = _gust_modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(owner(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets.update(owner(f"{base}.{a.name}") or owner(base) for a in node.names)
        targets.discard(None)
        targets.discard(name)
        graph[name] = targets
    return graph


def test_every_package_imports_only_from_the_layers_below_it():
    rank = {top: i for i, top in enumerate(LAYERS)}
    upward = sorted(
        f"{m} -> {t}" for m, ts in import_graph().items() for t in ts if rank[t.split(".")[0]] > rank[m.split(".")[0]]
    )
    assert upward == []


def test_no_modules_import_each_other_in_a_circle():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == []


def test_the_contract_sees_the_imports():
    """The graph is read from the files, imports inside functions included,
    so the two tests above can fail."""
    graph = import_graph()
    assert "core.lang.spec" in graph["core.engine"]
    assert "workflows.services" in graph["api.views"]
    assert "workflows.auth" in graph["ops.metrics"]  # imported inside a function


# --- templates follow the same layers -------------------------------------------
# A page of one app may load tag libraries, include templates, link to URL
# namespaces and test permissions only of its own app and the apps below it
# (an operator button on a workflows page would make workflows depend on ops;
# ops adds it through workflows.page_parts instead). The site frame
# (base.html, which every page extends) belongs to config.
URL_NAMESPACES = {
    "dashboard": "workflows",
    "tracker_pages": "tracker",
    "approvals": "approvals",
    "ops": "ops",
    "admin": "config",
}
TEMPLATE_REFERENCES = re.compile(
    r"{%\s*load\s+(?P<libs>[\w ]+?)\s*%}"
    r"|{%\s*(?:include|extends)\s+[\"'](?P<template>[^\"']+)[\"']"
    r"|{%\s*url\s+[\"'](?P<namespace>\w+):"
    r"|\bperms\.(?P<perm_app>\w+)\."
)


def template_owner(name: str) -> str:
    """The app a template name (``ops/parts/task.html``) belongs to."""
    first, _, rest = name.partition("/")
    if first == "includes":
        return "workflows"  # the dashboard's shared pieces
    if first == "admin" and rest.split("/")[0] in LAYERS:
        return rest.split("/")[0]
    return first if first in LAYERS else "config"


def _templates() -> dict[str, Path]:
    found = {}
    for folder in [ROOT / "templates", *(ROOT / top / "templates" for top in LAYERS)]:
        for path in folder.rglob("*.html"):
            found.setdefault(path.relative_to(folder).as_posix(), path)
    return found


def _tag_libraries() -> dict[str, str]:
    return {
        p.stem: p.relative_to(ROOT).parts[0]
        for top in LAYERS
        for p in (ROOT / top).glob("templatetags/*.py")
        if p.stem != "__init__"
    }


def template_dependencies(text: str, libraries: dict[str, str], ours=None) -> set[tuple[str, str]]:
    """(app, what) for each app a template's text refers to; of the templates
    it includes or extends, only ``ours`` (Django's own, such as the admin's,
    are not Gust's layers)."""
    found = set()
    for m in TEMPLATE_REFERENCES.finditer(text):
        if m["libs"]:
            found.update((libraries[lib], f"{{% load {lib} %}}") for lib in m["libs"].split() if lib in libraries)
        elif m["template"] and m["template"] != "base.html" and (ours is None or m["template"] in ours):
            found.add((template_owner(m["template"]), m["template"]))
        elif m["namespace"] in URL_NAMESPACES:
            found.add((URL_NAMESPACES[m["namespace"]], f"url '{m['namespace']}:...'"))
        elif m["perm_app"] in LAYERS:
            found.add((m["perm_app"], f"perms.{m['perm_app']}"))
    return found


def test_every_template_refers_only_to_its_layer_and_the_ones_below():
    libraries, templates = _tag_libraries(), _templates()
    upward = sorted(
        f"{name} ({template_owner(name)}) -> {what} ({app})"
        for name, path in templates.items()
        for app, what in template_dependencies(path.read_text(), libraries, templates)
        if LAYERS.index(app) > LAYERS.index(template_owner(name))
    )
    assert upward == []


def test_the_template_contract_sees_loads_includes_urls_and_permissions():
    text = (
        "{% load static ops %}{% include \"approvals/x.html\" %}{% url 'tracker_pages:overview' %}"
        "{% if perms.ops.fix_tasks %}{% extends \"base.html\" %}{% url 'login' %}"
    )
    assert template_dependencies(text, {"ops": "ops"}) == {
        ("ops", "{% load ops %}"),
        ("approvals", "approvals/x.html"),
        ("tracker", "url 'tracker_pages:...'"),
        ("ops", "perms.ops"),
    }
    assert template_owner("ops/parts/task.html") == "ops"
    assert template_owner("includes/badge.html") == "workflows"
    assert template_owner("registration/login.html") == "config"
