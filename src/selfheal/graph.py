"""State machines as pictures: an ASL definition → a graph → Mermaid text (README) and a self-contained SVG.

The SVG is laid out here, in pure Python (no graphviz): layers by longest path from the start, edges that
span several layers routed through lanes of their own, back edges (loops) drawn around the right side.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple
from xml.sax.saxutils import escape, quoteattr

START, END = "(start)", "(end)"  # the console's Start and End markers; a state with either name is refused
Status = Literal["succeeded", "failed", "running", "caught"]


@dataclass(frozen=True)
class Node:
    name: str
    type: str  # the ASL Type, or "Start" / "End" for the markers
    caption: str = ""  # what the state does, e.g. its service integration
    retry: tuple[str, ...] = ()  # one line per retrier: "<errors>: up to N retries"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    kind: Literal["start", "next", "choice", "default", "catch", "end"]
    label: str = ""


@dataclass
class Graph:
    name: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- ASL → Graph

def definition_graph(asl: dict[str, Any], name: str = "StateMachine") -> Graph:
    """Nodes are the states plus Start/End markers; edges are every transition the definition can take."""
    states: dict[str, Any] = asl["States"]
    if START in states or END in states:
        raise ValueError(f"state names {START!r} and {END!r} are reserved for the graph's markers")
    graph = Graph(name)
    graph.nodes[START] = Node(START, "Start")
    for state_name, state in states.items():
        graph.nodes[state_name] = Node(state_name, state["Type"], _caption(state), _retries(state))
    graph.nodes[END] = Node(END, "End")
    graph.edges.append(Edge(START, asl["StartAt"], "start"))
    for state_name, state in states.items():
        graph.edges += _merge(_transitions(state_name, state))
    return graph


def _transitions(name: str, state: dict[str, Any]) -> Iterable[Edge]:
    for rule in state.get("Choices", []):
        yield Edge(name, rule["Next"], "choice", condition_text(rule))
    if "Default" in state:
        yield Edge(name, state["Default"], "default", "default")
    if "Next" in state:
        yield Edge(name, state["Next"], "next")
    for catcher in state.get("Catch", []):
        yield Edge(name, catcher["Next"], "catch", ", ".join(catcher.get("ErrorEquals", [])))
    if state.get("End") or state["Type"] in ("Succeed", "Fail"):
        yield Edge(name, END, "end")


def _merge(edges: Iterable[Edge]) -> list[Edge]:
    """Two catchers (or choice rules) to the same target read better as one labelled edge."""
    merged: dict[tuple[str, str, str], Edge] = {}
    for edge in edges:
        key = (edge.source, edge.target, edge.kind)
        if key in merged:
            joiner = " or " if edge.kind == "choice" else ", "
            edge = Edge(edge.source, edge.target, edge.kind, merged[key].label + joiner + edge.label)
        merged[key] = edge
    return list(merged.values())


def _caption(state: dict[str, Any]) -> str:
    kind = state["Type"]
    if kind == "Task":
        return _task_caption(state)
    if kind == "Wait":
        for key, text in (("Seconds", "{} s"), ("SecondsPath", "{}"), ("Timestamp", "until {}"),
                          ("TimestampPath", "until {}")):
            if key in state:
                return "Wait " + text.format(state[key])
    if kind == "Map":
        processor = state.get("ItemProcessor") or state.get("Iterator") or {}
        return f"Map · {len(processor.get('States', {}))} states"
    if kind == "Parallel":
        return f"Parallel · {len(state.get('Branches', []))} branches"
    if kind == "Fail" and "Error" in state:
        return f"Fail · {state['Error']}"
    return kind


def _task_caption(state: dict[str, Any]) -> str:
    resource = str(state.get("Resource", "")).removeprefix("arn:aws:states:::")
    function = (state.get("Parameters") or state.get("Arguments") or {}).get("FunctionName")
    if resource.startswith("lambda:invoke") and isinstance(function, str):
        return "λ " + _substitution_name(function)
    if resource.startswith("${"):
        return "λ " + _substitution_name(resource)
    return resource


def _substitution_name(text: str) -> str:
    """`${EvaluateGateFunctionArn}` → `EvaluateGateFunction`: the template's name reads better than an ARN."""
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].removesuffix("Arn")
    return text.rsplit(":", 1)[-1]


def _retries(state: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f"{', '.join(rule.get('ErrorEquals', []))}: up to {rule.get('MaxAttempts', 3)} retries"
                 for rule in state.get("Retry", []))


_OPERATORS = {"Equals": "==", "LessThan": "<", "GreaterThan": ">", "LessThanEquals": "<=",
              "GreaterThanEquals": ">=", "Matches": "matches"}
_TESTS = {"IsPresent": "present", "IsNull": "null", "IsNumeric": "numeric", "IsString": "a string",
          "IsBoolean": "a boolean", "IsTimestamp": "a timestamp"}


def condition_text(rule: dict[str, Any]) -> str:
    """A Choice rule as an expression, e.g. `$.gate.passed == true`."""
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"]).removeprefix("{%").removesuffix("%}").strip()
    if "And" in rule or "Or" in rule:
        word = "and" if "And" in rule else "or"
        return f" {word} ".join(_grouped(part) for part in rule.get("And") or rule["Or"])
    if "Not" in rule:
        return f"not {_grouped(rule['Not'])}"
    variable = rule.get("Variable", "?")
    for key, value in rule.items():
        if key in _TESTS:
            return f"{variable} is {'' if value else 'not '}{_TESTS[key]}"
        for suffix, operator in _OPERATORS.items():
            base = key.removesuffix("Path")
            if base.endswith(suffix) and base[: -len(suffix)] in ("String", "Numeric", "Boolean", "Timestamp"):
                shown = value if key.endswith("Path") else json.dumps(value)
                return f"{variable} {operator} {shown}"
    return variable


def _grouped(rule: dict[str, Any]) -> str:
    text = condition_text(rule)
    return f"({text})" if " and " in text or " or " in text else text


# ------------------------------------------------------------------------------------------------- Mermaid

_MERMAID_SHAPES = {"Choice": '{{"{}"}}', "Wait": '[/"{}"/]', "Pass": '("{}")', "Map": '[["{}"]]',
                   "Parallel": '[["{}"]]', "Succeed": '(["{}"])', "Fail": '(["{}"])', "Start": '(("{}"))',
                   "End": '(("{}"))'}
_MERMAID_ARROWS = {"catch": "-.->"}


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart; node ids are generated (state names may hold any character)."""
    states = [name for name in graph.nodes if name not in (START, END)]
    ids = {START: "s_start", END: "s_end"} | {name: f"s{i}" for i, name in enumerate(states)}
    lines = [f"%% {graph.name}: generated from its ASL by `selfheal graph`; edit the ASL, not this file",
             "flowchart TD"]
    for name, node in graph.nodes.items():
        shown = _mermaid_text(name if node.type not in ("Start", "End") else node.type)
        if node.caption and node.type in ("Task", "Wait", "Map", "Parallel", "Fail"):
            shown += "<br/>" + _mermaid_text(node.caption)
        if node.retry:
            shown += "<br/>↻ retry"
        lines.append(f"    {ids[name]}" + _MERMAID_SHAPES.get(node.type, '["{}"]').format(shown))
    for edge in graph.edges:
        arrow = _MERMAID_ARROWS.get(edge.kind, "-->")
        label = f'|"{_mermaid_text(_cut(edge.label, LABEL_CHARS))}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    for css_class, style, kinds in (("failstate", "fill:#fde7e9,stroke:#d13212", ("Fail",)),
                                    ("succeedstate", "fill:#e3f4e5,stroke:#1d8102", ("Succeed",)),
                                    ("marker", "fill:#f2f3f3,stroke:#879596", ("Start", "End"))):
        members = [ids[n.name] for n in graph.nodes.values() if n.type in kinds]
        if members:
            lines += [f"    classDef {css_class} {style}", f"    class {','.join(members)} {css_class}"]
    return "\n".join(lines) + "\n"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mermaid_text(text: str) -> str:
    """Mermaid's entity codes, so quotes, pipes and angle brackets in names or conditions stay text."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(char, code)
    return text


# -------------------------------------------------------------------------------------------------- Layout

NODE_H, MARKER_H, LAYER_GAP, NODE_GAP, LANE_GAP, MARGIN = 46.0, 28.0, 50.0, 36.0, 16.0, 24.0
LABEL_ROW = 17.0  # each labelled edge leaving a layer gets a row of its own in the gap below it
NAME_CHARS, LABEL_CHARS = 34, 48  # longer names and conditions are cut; the tooltip keeps them whole


@dataclass
class _Slot:
    """A node, or a dummy point of an edge that crosses a layer, in one layer of the drawing."""
    key: str
    layer: int
    width: float
    x: float = 0.0

    @property
    def dummy(self) -> bool:
        return self.key.startswith("\0")


@dataclass
class _Layout:
    slots: dict[str, _Slot]
    routes: dict[int, list[str]]  # forward edge index → slot keys from source to target
    back: list[int]  # edge indexes drawn around the side
    centres: list[float]  # y of each layer's middle

    def y(self, layer: int) -> float:
        return self.centres[layer]


def _node_width(node: Node) -> float:
    if node.type in ("Start", "End"):
        return 64.0
    name = _cut(node.name, NAME_CHARS)
    return max(120.0, 7.6 * len(name) + 30, 6.2 * len(node.caption) + 26)


def _layout(graph: Graph) -> _Layout:
    back = _back_edges(graph)
    layer = _longest_path_layers(graph, back)
    slots = {name: _Slot(name, layer[name], _node_width(node)) for name, node in graph.nodes.items()}
    routes: dict[int, list[str]] = {}
    for index, edge in enumerate(graph.edges):
        if index in back:
            continue
        route = [edge.source]
        for between in range(layer[edge.source] + 1, layer[edge.target]):
            key = f"\0{index}.{between}"
            slots[key] = _Slot(key, between, 0.0)
            route.append(key)
        routes[index] = route + [edge.target]
    rows = _order_layers(slots, routes)
    _place(rows, routes)
    labelled = [layer[graph.edges[index].source] for index in routes if graph.edges[index].label]
    centres = [MARGIN + NODE_H / 2]
    for gap in range(len(rows) - 1):
        centres.append(centres[-1] + NODE_H + max(LAYER_GAP, 18 + LABEL_ROW * labelled.count(gap)))
    return _Layout(slots, routes, sorted(back), centres)


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


def _order_layers(slots: dict[str, _Slot], routes: dict[int, list[str]]) -> list[list[_Slot]]:
    """Barycenter sweeps to reduce crossings, starting from definition order; the best order seen wins."""
    rows: list[list[_Slot]] = [[] for _ in range(max(s.layer for s in slots.values()) + 1)]
    for slot in slots.values():  # definition order for nodes, edge order for dummies
        rows[slot.layer].append(slot)
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    for route in routes.values():
        for a, b in zip(route, route[1:], strict=False):
            down[a].append(b)
            up[b].append(a)
    best, best_crossings = [list(row) for row in rows], _crossings(rows, down)
    for sweep in range(8):
        downward = sweep % 2 == 0
        for i in range(1, len(rows)) if downward else range(len(rows) - 2, -1, -1):
            _sort_by_barycenter(rows[i], rows[i - 1] if downward else rows[i + 1], up if downward else down)
        crossings = _crossings(rows, down)
        if crossings < best_crossings:
            best, best_crossings = [list(row) for row in rows], crossings
    return best


def _sort_by_barycenter(row: list[_Slot], reference: list[_Slot], neighbours: dict[str, list[str]]) -> None:
    """Each slot moves to the mean position of its neighbours in the reference layer; lone slots stay put."""
    position = {s.key: p for p, s in enumerate(reference)}
    current = {s.key: p for p, s in enumerate(row)}

    def barycenter(slot: _Slot) -> float:
        return _mean([position[n] for n in neighbours[slot.key] if n in position], current[slot.key])

    row.sort(key=barycenter)


def _crossings(rows: list[list[_Slot]], down: dict[str, list[str]]) -> int:
    count = 0
    for upper, lower in zip(rows, rows[1:], strict=False):
        position = {s.key: p for p, s in enumerate(lower)}
        pairs = [(p, position[b]) for p, s in enumerate(upper) for b in down[s.key] if b in position]
        count += sum(1 for i, (a1, b1) in enumerate(pairs) for a2, b2 in pairs[i + 1:] if (a1 - a2) * (b1 - b2) < 0)
    return count


def _place(rows: list[list[_Slot]], routes: dict[int, list[str]]) -> None:
    """x by the priority method: sweeps move each slot toward its neighbours in the layer before it (down,
    then up); states outrank edge lanes, so the main path stays straight and lanes make room around it."""
    above: dict[str, list[str]] = defaultdict(list)
    below: dict[str, list[str]] = defaultdict(list)
    for route in routes.values():
        for a, b in zip(route, route[1:], strict=False):
            below[a].append(b)
            above[b].append(a)
    for row in rows:
        _pack(row, [0.0] * len(row))
    slots = {s.key: s for row in rows for s in row}

    def wanted(slot: _Slot, neighbours: list[str]) -> float:
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


def _pack(row: list[_Slot], wanted: list[float]) -> None:
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


# ----------------------------------------------------------------------------------------------------- SVG

_STYLE = {  # fill, stroke, text: the Step Functions console's colours
    None: ("#ffffff", "#545b64", "#16191f"),
    "succeeded": ("#e3f4e5", "#1d8102", "#16191f"),
    "failed": ("#fde7e9", "#d13212", "#16191f"),
    "caught": ("#fff1e0", "#ec7211", "#16191f"),
    "running": ("#e6f0fb", "#0073bb", "#16191f"),
    "not entered": ("#f2f3f3", "#aab7b8", "#879596"),
}
EDGE_COLOUR, EDGE_TAKEN, EDGE_FADED = "#545b64", "#16191f", "#c6cdce"
FONT = "'Amazon Ember', 'Helvetica Neue', Arial, sans-serif"


def to_svg(graph: Graph, highlight: dict[str, Status] | None = None, *, path: Sequence[str] = (),
           id_prefix: str = "g") -> str:
    """The graph as one SVG document. `highlight` colours states by outcome (the others read as not entered);
    `path` (the nodes an execution went through, START and END included when it did) darkens the edges
    taken. `id_prefix` keeps marker ids unique when several pictures share one HTML page."""
    layout = _layout(graph)
    taken = _taken(graph, path, highlight or {})
    forward = {index: _forward_points(graph, layout, index, route) for index, route in layout.routes.items()}
    edges: list[str] = []
    labels: list[_Label] = []
    for index, points in forward.items():
        edges.append(_path(graph.edges[index], _curve(points), _paint(index, taken, highlight), id_prefix))
    for gap_edges in _by_gap(graph, layout, forward).values():
        gap_edges.sort(key=lambda index: forward[index][1][0])  # rows top to bottom, leftmost target first
        for row, index in enumerate(gap_edges):
            (x0, y0), (x1, y1) = forward[index][:2]
            y = y0 + 10 + row * LABEL_ROW + max(0.0, (y1 - y0 - 18 - LABEL_ROW * len(gap_edges)) / 2)
            labels.append(_label(graph.edges[index].label, _curve_x(x0, y0, x1, y1, y), y))
    right = max([s.x + s.width / 2 for s in layout.slots.values()] + [label.right for label in labels])
    for lane, index in enumerate(layout.back):
        d, lane_x, middle = _back_path(layout, graph.edges[index], right + 20 + lane * LANE_GAP)
        edges.append(_path(graph.edges[index], d, _paint(index, taken, highlight), id_prefix))
        if graph.edges[index].label:
            labels.append(_label(graph.edges[index].label, lane_x, middle))
    nodes = [_node_svg(graph.nodes[s.key], s, layout, highlight) for s in layout.slots.values() if not s.dummy]
    left = min([MARGIN] + [label.left for label in labels])
    width = max([right + 20 + len(layout.back) * LANE_GAP] + [label.right for label in labels]) - left + MARGIN
    height = layout.y(len(layout.centres) - 1) + NODE_H / 2 + MARGIN
    markers = "".join(
        f'<marker id="{id_prefix}-arrow-{c[1:]}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>'
        for c in sorted({EDGE_COLOUR, EDGE_TAKEN, EDGE_FADED}))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="{FONT}" role="img" '
            f'aria-label={quoteattr(graph.name)}><title>{escape(graph.name)}</title><defs>{markers}</defs>'
            f'<g transform="translate({MARGIN - left:.1f},0)"><g class="edges">{"".join(edges)}</g>'
            f'<g class="nodes">{"".join(nodes)}</g><g class="labels">{"".join(label.svg for label in labels)}</g>'
            "</g></svg>")


def _by_gap(graph: Graph, layout: _Layout, forward: dict[int, list[tuple[float, float]]]) -> dict[int, list[int]]:
    """Labelled forward edges by the layer they leave: their labels share the gap below it."""
    gaps: dict[int, list[int]] = defaultdict(list)
    for index in forward:
        if graph.edges[index].label:
            gaps[layout.slots[graph.edges[index].source].layer].append(index)
    return gaps


def _taken(graph: Graph, path: Sequence[str], highlight: dict[str, Status]) -> set[int]:
    """The edges between consecutive nodes of the path; where a Next and a Catch join the same two states,
    the Catch when the state was caught."""
    taken = set()
    for source, target in zip(path, path[1:], strict=False):
        joining = [i for i, e in enumerate(graph.edges) if e.source == source and e.target == target]
        caught = highlight.get(source) == "caught"
        preferred = [i for i in joining if (graph.edges[i].kind == "catch") == caught]
        taken.update((preferred or joining)[:1])
    return taken


def _paint(index: int, taken: set[int], highlight: dict[str, Status] | None) -> tuple[str, float]:
    """Colour and width: the path taken stands out; with an execution shown, the rest fades."""
    if taken:
        return (EDGE_TAKEN, 2.2) if index in taken else (EDGE_FADED, 1.2)
    return (EDGE_FADED, 1.2) if highlight is not None else (EDGE_COLOUR, 1.4)


def _path(edge: Edge, d: str, paint: tuple[str, float], id_prefix: str) -> str:
    colour, width = paint
    dash = ' stroke-dasharray="5 4"' if edge.kind == "catch" else ""
    return (f'<path class="edge {edge.kind}" d="{d}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} '
            f'marker-end="url(#{id_prefix}-arrow-{colour[1:]})"/>')


def _half_height(graph: Graph, key: str) -> float:
    return (MARKER_H if graph.nodes[key].type in ("Start", "End") else NODE_H) / 2


def _forward_points(graph: Graph, layout: _Layout, index: int, route: list[str]) -> list[tuple[float, float]]:
    """From the source's bottom, through the top and bottom of each crossed layer's lane, to the target's top."""
    slots = layout.slots
    source, target = slots[route[0]], slots[route[-1]]
    points = [(_port(graph, layout, index, "out"), layout.y(source.layer) + _half_height(graph, source.key))]
    for key in route[1:-1]:
        slot = slots[key]
        points += [(slot.x, layout.y(slot.layer) - NODE_H / 2), (slot.x, layout.y(slot.layer) + NODE_H / 2)]
    points.append((_port(graph, layout, index, "in"), layout.y(target.layer) - _half_height(graph, target.key)))
    return points


def _curve(points: list[tuple[float, float]]) -> str:
    """S-curves between layers (vertical at both ends), straight lines inside a crossed layer."""
    d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for i in range(1, len(points)):
        (x0, y0), (x1, y1) = points[i - 1], points[i]
        if i % 2 == 0:
            d += f" L{x1:.1f},{y1:.1f}"
        else:
            bend = (y1 - y0) / 2
            d += f" C{x0:.1f},{y0 + bend:.1f} {x1:.1f},{y1 - bend:.1f} {x1:.1f},{y1:.1f}"
    return d


def _curve_x(x0: float, y0: float, x1: float, y1: float, y: float) -> float:
    """Where the S-curve from (x0, y0) to (x1, y1) crosses height y (bisection on its parameter)."""
    low, high = 0.0, 1.0
    for _ in range(30):
        t = (low + high) / 2
        if y0 + (y1 - y0) * (1.5 * t * (1 - t) + t**3) < y:  # the curve's y(t), with controls at half height
            low = t
        else:
            high = t
    t = (low + high) / 2
    return x0 + (x1 - x0) * (3 * t**2 - 2 * t**3)


def _port(graph: Graph, layout: _Layout, index: int, end: Literal["out", "in"]) -> float:
    """Edges sharing a node's bottom (or top) leave (or arrive) side by side, ordered by where they go."""
    edge = graph.edges[index]
    own = edge.source if end == "out" else edge.target
    siblings = [i for i, route in layout.routes.items() if (route[0] if end == "out" else route[-1]) == own]
    far = 1 if end == "out" else -2  # the slot each edge heads to (or comes from)
    siblings.sort(key=lambda i: layout.slots[layout.routes[i][far]].x)
    slot = layout.slots[own]
    step = min(22.0, slot.width / (len(siblings) + 1))
    return slot.x + (siblings.index(index) - (len(siblings) - 1) / 2) * step


def _back_path(layout: _Layout, edge: Edge, lane_x: float) -> tuple[str, float, float]:
    """Out of the source's right side, along a lane right of the whole drawing, into the target's right side."""
    source, target = layout.slots[edge.source], layout.slots[edge.target]
    y0, y1 = layout.y(source.layer), layout.y(target.layer)
    if source is target:
        y0, y1 = y0 + 8, y1 - 8
    x0, x1 = source.x + source.width / 2, target.x + target.width / 2
    turn = -6 if y1 < y0 else 6
    d = (f"M{x0:.1f},{y0:.1f} H{lane_x - 6:.1f} Q{lane_x:.1f},{y0:.1f} {lane_x:.1f},{y0 + turn:.1f} "
         f"V{y1 - turn:.1f} Q{lane_x:.1f},{y1:.1f} {lane_x - 6:.1f},{y1:.1f} H{x1 + 1:.1f}")
    return d, lane_x, (y0 + y1) / 2


class _Label(NamedTuple):
    left: float
    right: float
    svg: str


def _label(text: str, x: float, y: float) -> _Label:
    """An edge label centred on (x, y), on a white ground so it reads over lines; the tooltip holds it whole."""
    shown = _cut(text, LABEL_CHARS)
    width = 5.9 * len(shown) + 10
    svg = (f'<g class="edge-label"><title>{escape(text)}</title><rect x="{x - width / 2:.1f}" y="{y - 7:.1f}" '
           f'width="{width:.1f}" height="15" rx="3" fill="#ffffff" fill-opacity="0.94"/><text x="{x:.1f}" '
           f'y="{y + 4:.1f}" font-size="10.5" text-anchor="middle" fill="#545b64">{escape(shown)}</text></g>')
    return _Label(x - width / 2, x + width / 2, svg)


def _node_svg(node: Node, slot: _Slot, layout: _Layout, highlight: dict[str, Status] | None) -> str:
    x, y, w = slot.x, layout.y(slot.layer), slot.width
    marker = node.type in ("Start", "End")
    status = None if highlight is None or marker else highlight.get(node.name, "not entered")
    fill, stroke, ink = _STYLE[status]
    if marker:
        fill, stroke, ink = "#f2f3f3", "#879596", "#545b64"
    tooltip = "\n".join([node.type if marker else node.name, *([] if marker else [node.caption]), *node.retry,
                         *([f"status: {status}"] if status else [])])
    shape = _shape(node.type, x, y, w, MARKER_H if marker else NODE_H, fill, stroke)
    name = _cut(node.name, NAME_CHARS)
    if marker:
        text = f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="middle" fill="{ink}">{node.type}</text>'
    else:
        text = (f'<text x="{x:.1f}" y="{y - 3:.1f}" font-size="13" font-weight="bold" text-anchor="middle" '
                f'fill="{ink}">{escape(name)}</text><text x="{x:.1f}" y="{y + 13:.1f}" font-size="10.5" '
                f'text-anchor="middle" fill="#687078">{escape(node.caption)}</text>')
    badge = _retry_badge(x + w / 2, y - NODE_H / 2, stroke) if node.retry else ""
    attrs = "" if marker else f" data-state={quoteattr(node.name)}"
    return (f'<g class="state"{attrs} data-type={quoteattr(node.type)}><title>{escape(tooltip)}</title>'
            f"{shape}{text}{badge}</g>")


def _shape(kind: str, x: float, y: float, w: float, h: float, fill: str, stroke: str) -> str:
    paint = f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"'
    left, top = x - w / 2, y - h / 2
    if kind == "Choice":  # a hexagon: a diamond would need twice the width for the same name
        points = [(left, y), (left + 12, top), (left + w - 12, top), (left + w, y), (left + w - 12, top + h),
                  (left + 12, top + h)]
        return f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in points)}" {paint}/>'
    radius = h / 2 if kind in ("Start", "End", "Succeed", "Fail") else 6
    rect = f'<rect x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{radius}" {paint}/>'
    if kind in ("Map", "Parallel"):  # a second frame: the state holds states of its own
        rect += (f'<rect x="{left + 4:.1f}" y="{top + 4:.1f}" width="{w - 8:.1f}" height="{h - 8:.1f}" rx="4" '
                 f'fill="none" stroke="{stroke}" stroke-width="0.8"/>')
    if kind == "Wait":
        rect = rect.replace("<rect ", '<rect stroke-dasharray="6 3" ', 1)
    return rect


def _retry_badge(x: float, y: float, stroke: str) -> str:
    return (f'<g class="retry"><rect x="{x - 44:.1f}" y="{y - 8:.1f}" width="50" height="16" rx="8" fill="#ffffff" '
            f'stroke="{stroke}"/><text x="{x - 19:.1f}" y="{y + 4:.1f}" font-size="10" text-anchor="middle" '
            f'fill="#545b64">↻ retry</text></g>')


# ------------------------------------------------------------------------------------------------- Files

def asl_name(path: Path) -> str:
    return path.name.removesuffix(".asl.json")


def load_graph(path: Path) -> Graph:
    return definition_graph(json.loads(path.read_text()), _pascal(asl_name(path)))


def _pascal(snake: str) -> str:
    """training_pipeline → TrainingPipeline, the template's logical id."""
    return "".join(part.capitalize() for part in snake.split("_"))


def write_graphs(out_dir: Path, statemachines_dir: Path) -> list[Path]:
    """`<name>.svg` and `<name>.mmd` in out_dir for every `<name>.asl.json`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for asl in sorted(statemachines_dir.glob("*.asl.json")):
        graph = load_graph(asl)
        for suffix, text in ((".svg", to_svg(graph)), (".mmd", to_mermaid(graph))):
            target = out_dir / f"{asl_name(asl)}{suffix}"
            target.write_text(text, encoding="utf-8")
            written.append(target)
    return written
