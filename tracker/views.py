"""Tracker pages of the dashboard: live tracker figures, and the latest
``manage.py compare_completion`` run drawn as inline SVG charts.

Both pages are live (``workflows.live``: an event stream says "changed",
``static/live.js`` fetches the region again with ``X-Gust-Live: 1``). The
figures come from ``tracker.services.stats()`` and ``tracker.latency``, the
comparison from the JSON files the command writes to bench/results/; the
comparison page's button queues a quick run (``tracker.benchmarks``).
"""

from __future__ import annotations

import json
import math
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from tracker import benchmarks, latency, selectors, services
from tracker.conf import results_dir
from workflows import live
from workflows.errors import Conflict
from workflows.views import is_live

LATEST = "compare-latest.json"
_RUN_NAME = re.compile(r"^compare-(latest|\d{8}T\d{6}Z)\.json$")

PERCENTILES = (("p50", "#54aeff"), ("p95", "#0969da"), ("p99", "#0a3069"))
ROLES = (("web", "#2da44e"), ("worker", "#bf8700"), ("tracker", "#8250df"))


def _live(request) -> dict:
    """The live completion figures of ``?window=`` (an unknown one: the last 24 h), with their charts."""
    figures = latency.by_mode_for_page(request.GET.get("window", "24h"))
    return {
        "live": figures,
        "windows": list(latency.WINDOWS),
        "live_charts": [
            {
                "title": title,
                "chart": latency_chart(
                    [
                        {"name": r["mode"], "latency_ms": {p: r[key][p] for p, _ in PERCENTILES}}
                        for r in figures["modes"]
                        if r[key]["n"]
                    ]
                ),
            }
            for key, title in (("next", "detected → next task running"), ("detect", "outside done → detected"))
        ],
    }


def _page(request, template: str, region: str, context: dict):
    """The whole page, or only its live region for ``static/live.js``."""
    return render(request, region if is_live(request) else template, context)


@require_GET
def overview(request):
    """Live figures of the results tracker."""
    return _page(
        request,
        "tracker/overview.html",
        "tracker/_overview_live.html",
        {
            "nav": "tracker",
            "stats": services.stats(),
            "has_comparison": (results_dir() / LATEST).exists(),
            **_live(request),
        },
    )


@require_GET
def compare(request):
    """The latest comparison (or ``?run=compare-<timestamp>.json``) as charts
    and tables, the live figures, and the benchmark button with its progress."""
    name = request.GET.get("run") or LATEST
    if not _RUN_NAME.match(name):
        raise Http404("No such comparison run")
    folder = results_dir()
    path = folder / name
    runs = sorted(
        (p.name for p in folder.glob("compare-*.json") if _RUN_NAME.match(p.name) and p.name != LATEST), reverse=True
    )[:30]
    context = {
        "nav": "tracker",
        "run_name": name,
        "runs": runs,
        "result": None,
        "error": None,
        "bench_run": benchmarks.latest(),
        "can_run": benchmarks.allowed(request.user),
        "quick_command": " ".join(["manage.py compare_completion", *benchmarks.conf("BENCHMARK_ARGS")]),
        **_live(request),
    }
    template = ("tracker/compare.html", "tracker/_compare_live.html")
    if not path.exists():
        if name != LATEST:
            raise Http404("No such comparison run")
        return _page(request, *template, context)
    try:
        result = json.loads(path.read_text())
        modes = result.get("modes") or []
    except (OSError, ValueError) as exc:
        context["error"] = f"{path.name} could not be read: {exc}"
        return _page(request, *template, context)
    context.update(
        result=result,
        modes=modes,
        latency_chart=latency_chart(modes),
        cpu_chart=stacked_chart(modes, lambda m, role: (m.get("cpu_s") or {}).get(role, 0.0), "CPU seconds", "s"),
        sql_chart=stacked_chart(
            modes,
            lambda m, role: ((m.get("queries") or {}).get("by_role") or {}).get(role, {}).get("per_completion", 0.0),
            "SQL statements per completion",
            "",
        ),
        extras=_percentages(result.get("extras") or {}),
        targets=result.get("targets") or [],
    )
    return _page(request, *template, context)


@login_required
@require_POST
def run_benchmark(request):
    """The button: queue a quick ``compare_completion`` run (one at a time, permission tracker.run_benchmark)."""
    try:
        run = benchmarks.request(request.user, results_dir())
    except benchmarks.Forbidden as exc:
        return render(request, "403.html", {"message": exc.message}, status=403)
    except Conflict as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Benchmark run {run.id} queued: {run.step}.")
    window = request.POST.get("window")
    query = f"?window={window}" if window in latency.WINDOWS else ""
    return redirect(reverse("tracker_pages:compare") + query + "#benchmark")


def fingerprint(page: str) -> str:
    """What the page shows changed: a completion, the benchmark run, and on
    the overview the tracker's heartbeat (to 5 s)."""
    last = selectors.last_completion_id()
    run = benchmarks.latest()
    parts = [str(last), f"{run.id}-{run.state}-{run.progress}-{run.step}" if run else "-"]
    if page == "overview":
        seen = selectors.last_heartbeat()
        parts.append(str(int(seen.timestamp() // 5)) if seen else "-")
    return "|".join(parts)


@require_GET
def events(request):
    page = "overview" if request.GET.get("page") == "overview" else "compare"
    return live._stream(request, lambda: fingerprint(page))


def _percentages(extras: dict) -> dict:
    """Fractions of a core as percentages with two decimals, for the table."""
    out = {}
    for key, e in extras.items():
        e = dict(e)
        if e.get("tracker_core") is not None:
            e["tracker_pct"] = f"{e['tracker_core'] * 100:.2f}"
        if e.get("tracker_core_per_1000") is not None:
            e["per_1000_pct"] = f"{e['tracker_core_per_1000'] * 100:.2f}"
        out[key] = e
    return out


# --- chart geometry (the template only draws what is computed here) ------------

CHART_H = 260
TOP, BOTTOM, LEFT, RIGHT = 16, 64, 56, 12


def _frame(width: int, plot_h: float) -> dict:
    """The geometry every chart of these pages shares."""
    return {
        "empty": False,
        "width": width,
        "height": CHART_H,
        "left": LEFT,
        "right": width - RIGHT,
        "top": TOP,
        "base": TOP + plot_h,
        "label_y": TOP + plot_h + 14,
    }


def _nice_ceiling(x: float) -> float:
    if x <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(x))
    for step in (1, 2, 2.5, 5, 10):
        if x <= step * exp:
            return step * exp
    return 10 * exp


def _fmt_ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g} ms"


def latency_chart(modes: list[dict]) -> dict:
    """Grouped bars p50/p95/p99 per mode on a log scale (callbacks take
    milliseconds, 5 s polling takes seconds), with each mode's target."""
    values = [
        m["latency_ms"][p] for m in modes for p, _ in PERCENTILES if (m.get("latency_ms") or {}).get(p) is not None
    ]
    values = [v for v in values if v > 0]
    if not values:
        return {"empty": True}
    lo = 10 ** math.floor(math.log10(max(min(values), 0.1)))
    hi = 10 ** math.ceil(math.log10(max(values) * 1.1))
    bar_w, gap = 16, 22
    group_w = bar_w * len(PERCENTILES) + gap
    plot_h = CHART_H - TOP - BOTTOM
    width = LEFT + RIGHT + group_w * len(modes)

    def y(v: float) -> float:
        v = min(max(v, lo), hi)
        return TOP + plot_h * (1 - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)))

    ticks, t = [], lo
    while t <= hi * 1.0001:
        ticks.append({"y": round(y(t), 1), "label": _fmt_ms(t)})
        t *= 10
    groups = []
    for i, m in enumerate(modes):
        x0 = LEFT + i * group_w + gap / 2
        bars = []
        for j, (p, color) in enumerate(PERCENTILES):
            v = (m.get("latency_ms") or {}).get(p)
            if v is None:
                continue
            top = y(max(v, lo))
            bars.append(
                {
                    "x": round(x0 + j * bar_w, 1),
                    "y": round(top, 1),
                    "w": bar_w - 2,
                    "h": round(TOP + plot_h - top, 1),
                    "color": color,
                    "label": f"{m['name']} {p}: {v} ms",
                }
            )
        target = None
        if m.get("tracking") == "callback":
            target = 15.0
        elif m.get("tracking") == "poll" and m.get("query_interval"):
            target = m["query_interval"] * 1000 * 1.1
        groups.append(
            {
                "name": m["name"],
                "bars": bars,
                "label_x": round(x0 + bar_w * len(PERCENTILES) / 2, 1),
                "target": None
                if target is None
                else {
                    "y": round(y(target), 1),
                    "x1": round(x0 - 3, 1),
                    "x2": round(x0 + bar_w * len(PERCENTILES) + 1, 1),
                    "label": f"target {_fmt_ms(round(target, 1))}",
                },
            }
        )
    return {
        **_frame(width, plot_h),
        "ticks": ticks,
        "groups": groups,
        "legend": [{"name": p, "color": c} for p, c in PERCENTILES],
    }


def stacked_chart(modes: list[dict], value, title: str, unit: str) -> dict:
    """One bar per mode, stacked by process role (web, worker, tracker)."""
    totals = [sum(float(value(m, role) or 0) for role, _ in ROLES) for m in modes]
    if not modes or max(totals, default=0) <= 0:
        return {"empty": True, "title": title}
    top_value = _nice_ceiling(max(totals))
    bar_w, gap = 26, 20
    plot_h = CHART_H - TOP - BOTTOM
    width = LEFT + RIGHT + (bar_w + gap) * len(modes)
    scale = plot_h / top_value
    ticks = [
        {"y": round(TOP + plot_h - top_value * k / 4 * scale, 1), "label": f"{top_value * k / 4:g}{unit}"}
        for k in range(5)
    ]
    bars = []
    for i, m in enumerate(modes):
        x = LEFT + i * (bar_w + gap) + gap / 2
        base = TOP + plot_h
        segments = []
        for role, color in ROLES:
            v = float(value(m, role) or 0)
            if v <= 0:
                continue
            h = v * scale
            base -= h
            label = f"{m['name']} {role}: {v:g}{unit}"
            segments.append({"y": round(base, 1), "h": round(h, 1), "color": color, "label": label})
        bars.append(
            {
                "x": round(x, 1),
                "w": bar_w,
                "segments": segments,
                "label_x": round(x + bar_w / 2, 1),
                "name": m["name"],
                "total": round(totals[i], 2),
                "total_y": round(base - 4, 1),
            }
        )
    return {
        **_frame(width, plot_h),
        "title": title,
        "ticks": ticks,
        "bars": bars,
        "legend": [{"name": r, "color": c} for r, c in ROLES],
    }
