"""Layered layout of a workflow's task graph, drawn by the dashboard as inline SVG.

Pure Python (no Django) so it can be tested without a database. The layout
is deliberately simple and deterministic:

1. nodes are the tasks plus one node per engine command used as a target
   (``fail``, ``succeed``, ``pause``, ``noop``), so ``on-error: fail`` is visible;
2. back edges are found by a depth-first search from the start tasks; the
   rest is a DAG, and a node's layer is its longest path from a root in it
   (cycles therefore cannot make the layering loop);
3. each layer is ordered by the barycentre of its predecessors (one sweep,
   which removes most crossings for the usual fan-out/join shapes);
4. layers wider than ``MAX_PER_ROW`` wrap onto a grid of rows whose edges
   run along the gutters between columns, so a fan-out of 100 tasks stays a
   readable block instead of a 15 000 px wide line or a hairball.

The template only loops over ``Layout.nodes`` and ``Layout.edges``; every
coordinate and SVG path is computed here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.lang.spec import WorkflowSpec

NODE_W = 136
NODE_H = 34
GAP_X = 28  # wide enough for two gutter lines (see _edge_path)
GAP_Y = 54  # between layers: room for the edge curves
WRAP_GAP_Y = 22  # between the rows of one wrapped layer
MARGIN = 16
BACK_ROOM = 70  # right-hand margin that back edges curve through
MAX_PER_ROW = 7  # 7 columns fit the dashboard's 1320 px content width
LABEL_CHARS = 18

# Clause attribute on TaskSpec, and the small sideways offset per kind so
# that two edges between the same pair (say on-success and on-error) do not
# draw on top of each other.
KINDS = (("success", "on_success", 0), ("error", "on_error", 9), ("complete", "on_complete", -9))
# A reverse workflow has no transitions: its edges go from each required
# task to the task that requires it (the order they run in).
REQUIRES = ("requires", "requires", 0)
COMMAND_PREFIX = "@"  # node ids of engine commands; task names may not start a command target


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    layer: int
    x: float
    y: float
    command: bool = False
    state: str | None = None  # filled by Layout.with_states on the execution page
    w: int = NODE_W
    h: int = NODE_H

    @property
    def label(self) -> str:
        return self.name if len(self.name) <= LABEL_CHARS else self.name[: LABEL_CHARS - 1] + "…"

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def state_class(self) -> str:
        return f"state-{self.state.lower()}" if self.state else "state-none"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: str  # success | error | complete | requires
    conditional: bool
    condition: str  # the guard expressions, for the tooltip
    back: bool  # closes a cycle (or targets its own layer): drawn around the side
    path: str  # SVG path data


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    width: float
    height: float
    layers: int
    reverse: bool = False  # edges are `requires`, not transitions

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def with_states(self, states: dict[str, str]) -> Layout:
        """A copy whose task nodes carry the given state (task name -> state)."""
        nodes = tuple(n if n.command else replace(n, state=states.get(n.name)) for n in self.nodes)
        return replace(self, nodes=nodes)


def _collect(spec: WorkflowSpec) -> tuple[list[str], dict[str, str], list[tuple[str, str, str, list[str]]]]:
    """Node ids in definition order, their display names, and the deduplicated edges."""
    order = list(spec.tasks)
    names = {n: n for n in order}
    edges: dict[tuple[str, str, str], list[str]] = {}
    if spec.reverse:
        for task in spec.tasks.values():
            for required in task.requires:
                if required in spec.tasks:  # validation rejects others; stay robust for stored specs
                    edges.setdefault((required, task.name, REQUIRES[0]), [""])
        return order, names, [(s, t, k, c) for (s, t, k), c in edges.items()]
    for task in spec.tasks.values():
        for kind, attr, _ in KINDS:
            for tr in getattr(task, attr):
                if tr.is_command:
                    target = COMMAND_PREFIX + tr.target
                    if target not in names:
                        names[target] = tr.target
                elif tr.target in spec.tasks:
                    target = tr.target
                else:  # validation rejects these; stay robust for stored specs
                    continue
                conds = edges.setdefault((task.name, target, kind), [])
                conds.append("" if tr.condition is None else str(tr.condition))
    order += [n for n in names if n.startswith(COMMAND_PREFIX)]
    return order, names, [(s, t, k, c) for (s, t, k), c in edges.items()]


def _back_edges(roots: list[str], succ: dict[str, list[str]]) -> set[tuple[str, str]]:
    """Edges into a node still on the DFS stack. Iterative: a 1000-task chain
    must not hit Python's recursion limit."""
    colour = dict.fromkeys(succ, 0)  # 0 unseen, 1 on the stack, 2 done
    back = set()
    for root in roots:
        if colour[root]:
            continue
        colour[root] = 1
        stack = [(root, iter(succ[root]))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if colour[child] == 1:
                    back.add((node, child))
                elif colour[child] == 0:
                    colour[child] = 1
                    stack.append((child, iter(succ[child])))
                    break
            else:
                colour[node] = 2
                stack.pop()
    return back


def _layers(order: list[str], succ: dict[str, list[str]], back: set) -> dict[str, int]:
    """Longest path from a root over the forward edges (Kahn's topological order)."""
    indeg = dict.fromkeys(order, 0)
    for s in order:
        for t in succ[s]:
            if (s, t) not in back:
                indeg[t] += 1
    layer = dict.fromkeys(order, 0)
    ready = [n for n in order if indeg[n] == 0]
    while ready:
        node = ready.pop()
        for t in succ[node]:
            if (node, t) in back:
                continue
            layer[t] = max(layer[t], layer[node] + 1)
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    return layer


def _order_layers(order: list[str], layer: dict[str, int], preds: dict[str, list[str]]) -> list[list[str]]:
    """Group by layer and sort each by the mean position of its predecessors."""
    index = {n: i for i, n in enumerate(order)}
    rows: list[list[str]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for n in order:
        rows[layer[n]].append(n)
    pos: dict[str, float] = {}
    for row in rows:
        keys = {}
        for i, n in enumerate(row):
            placed = [pos[p] for p in preds[n] if p in pos]
            own = (i + 0.5) / len(row)
            keys[n] = (sum(placed) / len(placed) if placed else own, index[n])
        row.sort(key=keys.__getitem__)
        for i, n in enumerate(row):
            pos[n] = (i + 0.5) / len(row)
    return rows


def _fmt(x: float, y: float) -> str:
    return f"{round(x, 1):g},{round(y, 1):g}"


def _curve(p0: tuple[float, float], p1: tuple[float, float]) -> str:
    """A vertical S-curve from p0 down to p1 (the usual layer-to-layer edge)."""
    dy = max((p1[1] - p0[1]) / 2, 16)
    return f"C{_fmt(p0[0], p0[1] + dy)} {_fmt(p1[0], p1[1] - dy)} {_fmt(*p1)}"


@dataclass(frozen=True)
class _Band:
    """The vertical extent of one layer; ``wrapped`` when it spans several rows."""

    top: float
    bottom: float
    wrapped: bool


def _edge_path(a: Node, b: Node, back: bool, offset: int, bands: list[_Band]) -> str:
    if a.id == b.id:  # self loop on the right-hand side
        x, y = a.x + a.w, a.cy
        return f"M{_fmt(x, y - 8)} C{_fmt(x + 34, y - 26)} {_fmt(x + 34, y + 26)} {_fmt(x + 2, y + 8)}"
    if back:
        x1, y1 = a.x + a.w, a.cy + offset / 2
        x2, y2 = b.x + b.w + 2, b.cy + offset / 2
        bend = max(x1, x2) + 30 + min(abs(y1 - y2) * 0.15, BACK_ROOM - 34)
        return f"M{_fmt(x1, y1)} C{_fmt(bend, y1)} {_fmt(bend, y2)} {_fmt(x2, y2)}"
    # Wrapped layers are grids: their edges run along the gutters between
    # columns (in on the left of a node, out on its right), so 100 parallel
    # edges merge into a few trunk lines instead of a hairball across the grid.
    src, dst = bands[a.layer], bands[b.layer]
    parts = []
    if src.wrapped:
        gx = a.x + a.w + GAP_X * 0.3 + offset / 3
        start = (gx, src.bottom + 8)
        parts += [f"M{_fmt(a.x + a.w, a.cy)}", f"L{_fmt(gx, a.cy)}", f"L{_fmt(*start)}"]
    else:
        start = (a.cx + offset, a.y + a.h)
        parts.append(f"M{_fmt(*start)}")
    if dst.wrapped:
        gx = b.x - GAP_X * 0.3 + offset / 3
        end = (gx, dst.top - 8)
        parts += [_curve(start, end), f"L{_fmt(gx, b.cy)}", f"L{_fmt(b.x - 2, b.cy)}"]
    else:
        parts.append(_curve(start, (b.cx + offset, b.y - 2)))  # stop short of the border for the arrow
    return " ".join(parts)


def layout(spec: WorkflowSpec, max_per_row: int = MAX_PER_ROW) -> Layout:
    """Compute node positions and edge paths for a ``WorkflowSpec``."""
    order, names, raw_edges = _collect(spec)
    succ: dict[str, list[str]] = {n: [] for n in order}
    preds: dict[str, list[str]] = {n: [] for n in order}
    for s, t, _, _ in raw_edges:
        if t not in succ[s]:
            succ[s].append(t)
            preds[t].append(s)
    roots = list(spec.start_tasks) + order  # starts first; then whatever they do not reach
    back = _back_edges(roots, succ)
    layer = _layers(order, succ, back)
    rows = _order_layers(order, layer, {n: [p for p in preds[n] if (p, n) not in back] for n in order})

    per_row = max(1, max_per_row)
    widest = min(per_row, max((len(r) for r in rows), default=1))
    content_w = widest * (NODE_W + GAP_X) - GAP_X
    nodes: dict[str, Node] = {}
    bands: list[_Band] = []
    y = MARGIN
    for li, row in enumerate(rows):
        top = y
        # A wrapped layer is one centred block whose last row starts at the
        # left, so its columns (and the gutters between them) line up.
        block_w = min(len(row), per_row) * (NODE_W + GAP_X) - GAP_X
        for start in range(0, len(row), per_row):
            x = MARGIN + (content_w - block_w) / 2
            for n in row[start : start + per_row]:
                nodes[n] = Node(n, names[n], li, x, y, command=n.startswith(COMMAND_PREFIX))
                x += NODE_W + GAP_X
            y += NODE_H + WRAP_GAP_Y
        bands.append(_Band(top, y - WRAP_GAP_Y, len(row) > per_row))
        y += GAP_Y - WRAP_GAP_Y
    height = (y - GAP_Y + MARGIN) if rows else 2 * MARGIN

    edges = []
    for s, t, kind, conds in raw_edges:
        is_back = (s, t) in back or layer[t] <= layer[s]
        offset = next(o for k, _, o in (*KINDS, REQUIRES) if k == kind)
        edges.append(
            Edge(
                source=s,
                target=t,
                kind=kind,
                conditional=any(conds),
                condition=" | ".join(c for c in conds if c),
                back=is_back,
                path=_edge_path(nodes[s], nodes[t], is_back, offset, bands),
            )
        )
    has_side_edges = any(e.back for e in edges)
    width = MARGIN * 2 + content_w + (BACK_ROOM if has_side_edges else 0)
    return Layout(
        tuple(nodes[n] for r in rows for n in r), tuple(edges), width, height, len(rows), reverse=spec.reverse
    )
