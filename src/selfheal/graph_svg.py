"""A state machine's picture as one self-contained SVG document, and the files `selfheal graph` writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple
from xml.sax.saxutils import escape, quoteattr

from .graph import LABEL_CHARS, NAME_CHARS, Edge, Graph, Node, Status, asl_name, cut, load_graph, to_mermaid
from .graph_layout import LABEL_ROW, LANE_GAP, MARGIN, MARKER_H, NODE_H, Layout, Slot, lay_out

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
    layout = lay_out(graph)
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


def _by_gap(graph: Graph, layout: Layout, forward: dict[int, list[tuple[float, float]]]) -> dict[int, list[int]]:
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


def _forward_points(graph: Graph, layout: Layout, index: int, route: list[str]) -> list[tuple[float, float]]:
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


def _port(graph: Graph, layout: Layout, index: int, end: Literal["out", "in"]) -> float:
    """Edges sharing a node's bottom (or top) leave (or arrive) side by side, ordered by where they go."""
    edge = graph.edges[index]
    own = edge.source if end == "out" else edge.target
    siblings = [i for i, route in layout.routes.items() if (route[0] if end == "out" else route[-1]) == own]
    far = 1 if end == "out" else -2  # the slot each edge heads to (or comes from)
    siblings.sort(key=lambda i: layout.slots[layout.routes[i][far]].x)
    slot = layout.slots[own]
    step = min(22.0, slot.width / (len(siblings) + 1))
    return slot.x + (siblings.index(index) - (len(siblings) - 1) / 2) * step


def _back_path(layout: Layout, edge: Edge, lane_x: float) -> tuple[str, float, float]:
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
    shown = cut(text, LABEL_CHARS)
    width = 5.9 * len(shown) + 10
    svg = (f'<g class="edge-label"><title>{escape(text)}</title><rect x="{x - width / 2:.1f}" y="{y - 7:.1f}" '
           f'width="{width:.1f}" height="15" rx="3" fill="#ffffff" fill-opacity="0.94"/><text x="{x:.1f}" '
           f'y="{y + 4:.1f}" font-size="10.5" text-anchor="middle" fill="#545b64">{escape(shown)}</text></g>')
    return _Label(x - width / 2, x + width / 2, svg)


def _node_svg(node: Node, slot: Slot, layout: Layout, highlight: dict[str, Status] | None) -> str:
    x, y, w = slot.x, layout.y(slot.layer), slot.width
    marker = node.type in ("Start", "End")
    status = None if highlight is None or marker else highlight.get(node.name, "not entered")
    fill, stroke, ink = _STYLE[status]
    if marker:
        fill, stroke, ink = "#f2f3f3", "#879596", "#545b64"
    tooltip = "\n".join([node.type if marker else node.name, *([] if marker else [node.caption]), *node.retry,
                         *([f"status: {status}"] if status else [])])
    shape = _shape(node.type, x, y, w, MARKER_H if marker else NODE_H, fill, stroke)
    name = cut(node.name, NAME_CHARS)
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
