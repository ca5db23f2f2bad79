"""The pure core (language, engine, states, action table, graph and timeline layout) has
no Django in it, so its tests run in milliseconds and it can be reasoned
about alone. This test is the contract: a new import of Django, of the ORM
or of a Django-side Gust module into the core fails CI."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The pure core, and the pure parts of the apps above it (tested without a database).
PURE = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py")) + ["tracker/advice.py"]
PURE_MODULES = {p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in PURE}
FORBIDDEN_TOP = {"django", "rest_framework", "django_q", "drf_spectacular",
                 "workflows", "webhooks", "tracker", "approvals", "ops", "api", "bench", "config"}


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
    code = ("import sys\n" + "".join(f"import {m}\n" for m in sorted(PURE_MODULES)) +
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'django_q'}))")
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
    upward = sorted(f"{m} -> {t}" for m, ts in import_graph().items() for t in ts
                    if rank[t.split(".")[0]] > rank[m.split(".")[0]])
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
