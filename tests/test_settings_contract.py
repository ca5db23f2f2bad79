"""Settings are read one way: each app's namespace (GUST, TRACKER, WEBHOOKS,
OPS) only through its conf module, and every setting at call time, so
``override_settings`` and a changed environment reach every reader.
Checked by reading the source, as the import contract is."""

from __future__ import annotations

import ast
from pathlib import Path

from django.conf import settings

from ops import conf as ops_conf
from tracker import conf as tracker_conf
from webhooks import conf as webhooks_conf
from workflows import conf as workflows_conf

ROOT = Path(__file__).resolve().parent.parent
APPS = ("core", "workflows", "webhooks", "tracker", "approvals", "ops", "api", "config")
# namespace -> the one module that reads it
OWNERS = {
    "GUST": "workflows/conf.py",
    "TRACKER": "tracker/conf.py",
    "WEBHOOKS": "webhooks/conf.py",
    "OPS": "ops/conf.py",
}
CONFS = {"GUST": workflows_conf, "TRACKER": tracker_conf, "WEBHOOKS": webhooks_conf, "OPS": ops_conf}


def sources():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/migrations/" not in rel and rel != "config/settings.py":
                yield rel, ast.parse(path.read_text(), rel)


def settings_reads(tree: ast.AST):
    """(line, name, at import time) of each ``settings.NAME`` and ``getattr(settings, "NAME")``."""
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            name = None
            if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) and child.value.id == "settings":
                name = child.attr
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name)
                and child.func.id == "getattr"
                and len(child.args) >= 2
                and isinstance(child.args[0], ast.Name)
                and child.args[0].id == "settings"
                and isinstance(child.args[1], ast.Constant)
            ):
                name = child.args[1].value
            if name is not None:
                found.append((child.lineno, name, not in_function))
            visit(child, inner)

    visit(tree, False)
    return found


def test_each_namespace_is_read_only_by_its_apps_conf_module():
    wrong = [
        f"{rel}:{line} reads settings.{name} (read it through {OWNERS[name]})"
        for rel, tree in sources()
        for line, name, _ in settings_reads(tree)
        if name in OWNERS and rel != OWNERS[name]
    ]
    assert wrong == []


def test_no_setting_is_read_when_a_module_is_imported():
    frozen = [
        f"{rel}:{line} reads settings.{name} at import time (read it in the function that needs it)"
        for rel, tree in sources()
        for line, name, at_import in settings_reads(tree)
        if at_import
    ]
    assert frozen == []


def test_every_key_the_settings_fill_has_a_default_in_its_conf_module():
    """A key config/settings.py sets that no conf module knows is a typo
    nobody reads."""
    unknown = [
        f"settings.{ns}[{key!r}]"
        for ns, conf in CONFS.items()
        for key in getattr(settings, ns, {})
        if key not in conf.DEFAULTS
    ]
    assert unknown == []


def test_a_setting_is_read_at_call_time(settings):
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 0.25}
    settings.OPS = {"METRICS_TOKEN": "t0ken"}
    assert tracker_conf.get("QUERY_INTERVAL") == 0.25
    assert ops_conf.get("METRICS_TOKEN") == "t0ken"
    assert webhooks_conf.get("MAX_ATTEMPTS") == webhooks_conf.DEFAULTS["MAX_ATTEMPTS"]  # not set: the default


def test_the_benchmark_results_folder_follows_the_setting(settings, tmp_path):
    settings.TRACKER = {**settings.TRACKER, "BENCH_RESULTS_DIR": str(tmp_path)}
    assert tracker_conf.results_dir() == tmp_path
    settings.TRACKER = {k: v for k, v in settings.TRACKER.items() if k != "BENCH_RESULTS_DIR"}
    assert tracker_conf.results_dir() == Path(settings.BASE_DIR) / "bench" / "results"


def test_the_check_sees_reads_at_import_and_in_functions():
    tree = ast.parse(
        "from django.conf import settings\nX = settings.GUST\ndef f():\n    return getattr(settings, 'OPS', {})\n"
    )
    assert settings_reads(tree) == [(2, "GUST", True), (4, "OPS", False)]


def test_a_section_of_a_namespace_reads_its_own_defaults(settings):
    from tracker import benchmarks, latency

    configured = set(settings.TRACKER.get("COMPLETIONS", {}))
    assert configured <= set(latency.DEFAULTS) | set(benchmarks.DEFAULTS)  # no key nobody reads
    settings.TRACKER = {**settings.TRACKER, "COMPLETIONS": {"RAW_DAYS": 9}}
    assert latency.conf("RAW_DAYS") == 9
    assert benchmarks.conf("BENCHMARK_TIMEOUT") == benchmarks.DEFAULTS["BENCHMARK_TIMEOUT"]
