"""The layout of a state machine's picture: layers by longest path from the start, edges that span several
layers routed through lanes of their own (dummy points), back edges (loops) drawn around the right side,
and the order within each layer chosen to cross as few edges as possible."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .graph import NAME_CHARS, START, Graph, Node, cut

# -------------------------------------------------------------------------------------------------- Layout

NODE_H, MARKER_H, LAYER_GAP, NODE_GAP, LANE_GAP, MARGIN = 46.0, 28.0, 50.0, 36.0, 16.0, 24.0
LABEL_ROW = 17.0  # each labelled edge leaving a layer gets a row of its own in the gap below it


@dataclass
class Slot:
    """A node, or a dummy point of an edge that crosses a layer, in one layer of the drawing."""
    key: str
    layer: int
    width: float
    x: float = 0.0

    @property
    def dummy(self) -> bool:
        return self.key.startswith("\0")


@dataclass
class Layout:
    slots: dict[str, Slot]
    routes: dict[int, list[str]]  # forward edge index → slot keys from source to target
    back: list[int]  # edge indexes drawn around the side
    centres: list[float]  # y of each layer's middle

    def y(self, layer: int) -> float:
        return self.centres[layer]


def _node_width(node: Node) -> float:
    if node.type in ("Start", "End"):
        return 64.0
    name = cut(node.name, NAME_CHARS)
    return max(120.0, 7.6 * len(name) + 30, 6.2 * len(node.caption) + 26)


def lay_out(graph: Graph) -> Layout:
    back = _back_edges(graph)
    layer = _longest_path_layers(graph, back)
    slots = {name: Slot(name, layer[name], _node_width(node)) for name, node in graph.nodes.items()}
    routes: dict[int, list[str]] = {}
    for index, edge in enumerate(graph.edges):
        if index in back:
            continue
        route = [edge.source]
        for between in range(layer[edge.source] + 1, layer[edge.target]):
            key = f"\0{index}.{between}"
            slots[key] = Slot(key, between, 0.0)
            route.append(key)
        routes[index] = route + [edge.target]
    rows = _order_layers(slots, routes)
    _place(rows, routes)
    labelled = [layer[graph.edges[index].source] for index in routes if graph.edges[index].label]
    centres = [MARGIN + NODE_H / 2]
    for gap in range(len(rows) - 1):
        centres.append(centres[-1] + NODE_H + max(LAYER_GAP, 18 + LABEL_ROW * labelled.count(gap)))
    return Layout(slots, routes, sorted(back), centres)


def _back_edges(graph: Graph) -> set[int]:
    """Edges that close a cycle, found by depth-first search from the start in definition order."""
    out: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, edge in enumerate(graph.edges):
        out[edge.source].append((index, edge.target))
    back: set[int] = set()
    state: dict[str, str] = {}  # "open" while on the stack, then "done"
    for root in [START, *graph.nodes]:
        if root in state:
            continue
        state[root] = "open"
        stack = [(root, iter(out[root]))]
        while stack:
            node, children = stack[-1]
            for index, child in children:
                if state.get(child) == "open":
                    back.add(index)
                elif child not in state:
                    state[child] = "open"
                    stack.append((child, iter(out[child])))
                    break
            else:
                state[node] = "done"
                stack.pop()
    return back


def _longest_path_layers(graph: Graph, back: set[int]) -> dict[str, int]:
    forward = [edge for index, edge in enumerate(graph.edges) if index not in back]
    incoming = {name: 0 for name in graph.nodes}
    for edge in forward:
        incoming[edge.target] += 1
    layer = dict.fromkeys(graph.nodes, 0)
    ready = [name for name, count in incoming.items() if count == 0]
    while ready:
        name = ready.pop(0)
        for edge in forward:
            if edge.source == name:
                layer[edge.target] = max(layer[edge.target], layer[name] + 1)
                incoming[edge.target] -= 1
                if incoming[edge.target] == 0:
                    ready.append(edge.target)
    return layer


def _order_layers(slots: dict[str, Slot], routes: dict[int, list[str]]) -> list[list[Slot]]:
    """Barycenter sweeps to reduce crossings, starting from definition order; the best order seen wins."""
    rows: list[list[Slot]] = [[] for _ in range(max(s.layer for s in slots.values()) + 1)]
    for slot in slots.values():  # definition order for nodes, edge order for dummies
        rows[slot.layer].append(slot)
    up, down = _neighbours(routes)
    best, best_crossings = [list(row) for row in rows], _crossings(rows, down)
    for sweep in range(8):
        downward = sweep % 2 == 0
        for i in range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1):
            _sort_by_barycenter(rows[i], rows[i - 1] if downward else rows[i + 1], up if downward else down)
        crossings = _crossings(rows, down)
        if crossings < best_crossings:
            best, best_crossings = [list(row) for row in rows], crossings
    return best


def _neighbours(routes: dict[int, list[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(above, below): each slot's neighbours one layer up and one layer down, along the routes."""
    above: dict[str, list[str]] = defaultdict(list)
    below: dict[str, list[str]] = defaultdict(list)
    for route in routes.values():
        for a, b in zip(route, route[1:], strict=False):
            below[a].append(b)
            above[b].append(a)
    return above, below


def _sort_by_barycenter(row: list[Slot], reference: list[Slot], neighbours: dict[str, list[str]]) -> None:
    """Each slot moves to the mean position of its neighbours in the reference layer; lone slots stay put."""
    position = {s.key: p for p, s in enumerate(reference)}
    current = {s.key: p for p, s in enumerate(row)}

    def barycenter(slot: Slot) -> float:
        return _mean([position[n] for n in neighbours[slot.key] if n in position], current[slot.key])

    row.sort(key=barycenter)


def _crossings(rows: list[list[Slot]], down: dict[str, list[str]]) -> int:
    count = 0
    for upper, lower in zip(rows, rows[1:], strict=False):
        position = {s.key: p for p, s in enumerate(lower)}
        pairs = [(p, position[b]) for p, s in enumerate(upper) for b in down[s.key] if b in position]
        count += sum(1 for i, (a1, b1) in enumerate(pairs) for a2, b2 in pairs[i + 1:] if (a1 - a2) * (b1 - b2) < 0)
    return count


def _place(rows: list[list[Slot]], routes: dict[int, list[str]]) -> None:
    """x by the priority method: sweeps move each slot toward its neighbours in the layer before it (down,
    then up); states outrank edge lanes, so the main path stays straight and lanes make room around it."""
    above, below = _neighbours(routes)
    for row in rows:
        _pack(row, [0.0] * len(row))
    slots = {s.key: s for row in rows for s in row}

    def wanted(slot: Slot, neighbours: list[str]) -> float:
        # a state follows states, a lane its own lane; the other kind counts only when nothing else is there
        weights = [1.0 if slot.dummy == slots[n].dummy else 1e-3 for n in neighbours]
        return _weighted_mean([slots[n].x for n in neighbours], weights, slot.x)

    for sweep in range(13):  # the last sweep goes down: each state ends up under the ones it comes from
        downward = sweep % 2 == 0
        for row in rows if downward else rows[::-1]:
            _pack(row, [wanted(s, (above if downward else below)[s.key]) for s in row])
    left = min(s.x - s.width / 2 for s in slots.values())
    for slot in slots.values():
        slot.x += MARGIN - left


def _pack(row: list[Slot], wanted: list[float]) -> None:
    """Place states first, then lanes, each as near its wanted x as the ones placed before allow, keeping the
    layer's order and gaps (the gaps of everything between are reserved, so all slots always fit)."""
    gaps = [0.0] + [(a.width + b.width) / 2 + (LANE_GAP if a.dummy or b.dummy else NODE_GAP)
                    for a, b in zip(row, row[1:], strict=False)]
    offset = [sum(gaps[: i + 1]) for i in range(len(row))]  # x_j - x_i >= offset_j - offset_i
    placed: dict[int, float] = {}
    for i in sorted(range(len(row)), key=lambda i: row[i].dummy):
        low = max((x + offset[i] - offset[j] for j, x in placed.items() if j < i), default=-float("inf"))
        high = min((x - offset[j] + offset[i] for j, x in placed.items() if j > i), default=float("inf"))
        placed[i] = min(max(wanted[i], low), high)
    for i, slot in enumerate(row):
        slot.x = placed[i]


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def _weighted_mean(values: list[float], weights: list[float], default: float) -> float:
    return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights) if values else default


