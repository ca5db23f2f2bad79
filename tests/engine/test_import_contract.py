"""The pure core (language, engine, states, action table, graph and timeline layout) has
no Django in it, so its tests run in milliseconds and it can be reasoned
about alone. This test is the contract: a new import of Django, of the ORM
or of a Django-side Gust module into the core fails CI."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = ["workflows/engine.py", "workflows/adhoc.py", "workflows/policies.py", "workflows/states.py",
        "workflows/actions.py", "workflows/graph.py", "workflows/cron.py",
        "workflows/timeline.py", "tracker/advice.py",
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "workflows/lang").glob("*.py"))]
PURE_MODULES = {p.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for p in PURE}
FORBIDDEN_TOP = {"django", "rest_framework", "django_q", "drf_spectacular", "tracker", "approvals", "bench", "config"}


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
            top = name.split(".")[0]
            gust_side = top == "workflows" and name not in PURE_MODULES and name.rsplit(".", 1)[0] not in PURE_MODULES \
                and name != "workflows"
            if top in FORBIDDEN_TOP or gust_side:
                offending.setdefault(rel, []).append(name)
    assert offending == {}


def test_importing_the_pure_core_loads_no_django():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in sorted(PURE_MODULES)) +
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'django_q'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
