"""`selfheal graph`: every state machine as a picture and as Mermaid text, straight from its ASL."""

from __future__ import annotations

import itertools
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from selfheal.graph import END, START, Graph, condition_text, definition_graph, load_graph, to_mermaid
from selfheal.graph_svg import to_svg, write_graphs

ROOT = Path(__file__).resolve().parents[2]
STATEMACHINES = ROOT / "statemachines"
ASL_FILES = sorted(STATEMACHINES.glob("*.asl.json"))
SVG = "{http://www.w3.org/2000/svg}"


def transitions(asl: dict[str, Any]) -> set[tuple[str, str, str]]:
    """Every transition the definition can take, read independently of the code under test."""
    found = {(START, asl["StartAt"], "start")}
    for name, state in asl["States"].items():
        found |= {(name, rule["Next"], "choice") for rule in state.get("Choices", [])}
        found |= {(name, catcher["Next"], "catch") for catcher in state.get("Catch", [])}
        if "Default" in state:
            found.add((name, state["Default"], "default"))
        if "Next" in state:
            found.add((name, state["Next"], "next"))
        if state.get("End") or state["Type"] in ("Succeed", "Fail"):
            found.add((name, END, "end"))
    return found


def mermaid_structure(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """Node declarations (id → label) and edges (source id, arrow, target id) of a flowchart, line by line."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("%%")]
    assert lines[0] == "flowchart TD"
    nodes: dict[str, str] = {}
    edges = []
    for line in lines[1:]:
        if edge := re.fullmatch(r'(\w+) (-->|-\.->)(?:\|"([^"|]*)"\|)? (\w+)', line):
            edges.append((edge[1], edge[2], edge[4]))
        elif node := re.fullmatch(r'(\w+)(\(\(|\(\[|\[\[|\[/|\[|\{|\()"([^"]*)"(\)\)|\]\)|\]\]|/\]|\]|\}|\))', line):
            assert node[1] not in nodes, f"{node[1]} declared twice"
            nodes[node[1]] = node[3]
        else:
            assert re.fullmatch(r"(classDef \w+ [\w:#,]+|class [\w,]+ \w+)", line), f"not Mermaid: {line!r}"
    return nodes, edges


def shapes(svg: ET.Element) -> dict[str, tuple[float, float, float, float]]:
    """Each state's box (left, top, right, bottom) as drawn, in the picture's coordinates."""
    shift = float(re.fullmatch(r"translate\(([-\d.]+),0\)", svg.find(f"{SVG}g").get("transform"))[1])
    boxes = {}
    for group in svg.iter(f"{SVG}g"):
        if "data-state" not in group.attrib:
            continue
        shape = group.find(f"{SVG}rect")
        if shape is not None:
            x, y, w, h = (float(shape.get(k, 0)) for k in ("x", "y", "width", "height"))
            boxes[group.get("data-state")] = (x + shift, y, x + w + shift, y + h)
        else:
            points = [tuple(map(float, p.split(","))) for p in group.find(f"{SVG}polygon").get("points").split()]
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            boxes[group.get("data-state")] = (min(xs) + shift, min(ys), max(xs) + shift, max(ys))
    return boxes


@pytest.fixture(params=ASL_FILES, ids=[p.name for p in ASL_FILES])
def asl_file(request: pytest.FixtureRequest) -> Path:
    return request.param


def test_there_are_state_machines_to_draw():
    assert ASL_FILES, "no statemachines/*.asl.json"


def test_every_state_is_a_node_and_every_transition_an_edge(asl_file):
    # Given a state machine definition
    asl = json.loads(asl_file.read_text())
    # When it becomes a graph
    graph = load_graph(asl_file)
    # Then every state is a node (between the Start and End markers), and every Next, Choice branch, Default and
    # Catch target is an edge of its kind
    assert set(graph.nodes) == set(asl["States"]) | {START, END}
    assert {(e.source, e.target, e.kind) for e in graph.edges} == transitions(asl)
    # And choice branches carry their condition, catches their error names, and retried states their rules
    for edge in graph.edges:
        if edge.kind in ("choice", "catch", "default"):
            assert edge.label, edge
    assert {n for n, s in asl["States"].items() if s.get("Retry")} == {n.name for n in graph.nodes.values() if n.retry}


def test_the_mermaid_text_is_a_flowchart_whose_edges_join_declared_nodes(asl_file):
    graph = load_graph(asl_file)
    nodes, edges = mermaid_structure(to_mermaid(graph))
    assert len(nodes) == len(graph.nodes)
    assert len(edges) == len(graph.edges)
    assert all(source in nodes and target in nodes for source, _, target in edges)
    assert sum(arrow == "-.->" for _, arrow, _ in edges) == sum(e.kind == "catch" for e in graph.edges)
    assert {label.split("<br/>")[0] for label in nodes.values()} >= {n for n in graph.nodes if n not in (START, END)}


def test_the_svg_is_well_formed_and_draws_every_state_once_without_overlaps(asl_file):
    graph = load_graph(asl_file)
    svg = ET.fromstring(to_svg(graph))
    assert svg.tag == f"{SVG}svg" and float(svg.get("width")) > 0 and float(svg.get("height")) > 0
    boxes = shapes(svg)
    assert set(boxes) == set(graph.nodes) - {START, END}
    for (a, box_a), (b, box_b) in itertools.combinations(boxes.items(), 2):
        apart = box_a[2] <= box_b[0] or box_b[2] <= box_a[0] or box_a[3] <= box_b[1] or box_b[3] <= box_a[1]
        assert apart, f"{a} and {b} overlap"
    width, height = float(svg.get("width")), float(svg.get("height"))
    assert all(left >= 0 and right <= width and bottom <= height for left, _, right, bottom in boxes.values())
    assert len([p for p in svg.iter(f"{SVG}path") if "edge" in p.get("class", "")]) == len(graph.edges)


def test_the_docs_pictures_are_regenerated_from_the_current_asl(asl_file):
    # The README shows docs/statemachines/: it must be the ASL as it is, not as it was
    name = asl_file.name.removesuffix(".asl.json")
    graph = load_graph(asl_file)
    for suffix, text in ((".mmd", to_mermaid(graph)), (".svg", to_svg(graph))):
        path = ROOT / "docs" / "statemachines" / f"{name}{suffix}"
        assert path.exists() and path.read_text() == text, (
            f"{path.relative_to(ROOT)} is stale: run `selfheal graph --out docs/statemachines`")


LOOP = {  # a poll loop, a state that catches into itself, and the two boxes that hold states of their own
    "StartAt": "Start job",
    "States": {
        "Start job": {"Type": "Task", "Resource": "${StartJobFunctionArn}", "Next": "Wait",
                      "Retry": [{"ErrorEquals": ["States.Timeout"], "MaxAttempts": 2}],
                      "Catch": [{"ErrorEquals": ["Busy"], "Next": "Start job"},
                                {"ErrorEquals": ["States.ALL"], "Next": "Give up"}]},
        "Wait": {"Type": "Wait", "Seconds": 30, "Next": "Poll"},
        "Poll": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:glue:getJobRun", "Next": "Done?"},
        "Done?": {"Type": "Choice", "Default": "Wait", "Choices": [
            {"And": [{"Variable": "$.state", "StringEquals": "SUCCEEDED"},
                     {"Not": {"Variable": "$.warnings", "IsPresent": True}}], "Next": "Fan out"},
            {"Variable": "$.tries", "NumericGreaterThanEqualsPath": "$.max", "Next": "Give up"}]},
        "Fan out": {"Type": "Map", "ItemProcessor": {"StartAt": "One", "States": {
            "One": {"Type": "Pass", "Next": "Two"}, "Two": {"Type": "Pass", "End": True}}}, "Next": "Both"},
        "Both": {"Type": "Parallel", "Branches": [{}, {}], "Next": "Finished"},
        "Finished": {"Type": "Succeed"},
        "Give up": {"Type": "Fail", "Error": "JobFailed"},
    },
}


def test_loops_are_drawn_around_the_side_and_boxes_hold_their_states():
    graph = definition_graph(LOOP, "Loop")
    svg = ET.fromstring(to_svg(graph))
    boxes = shapes(svg)
    # The poll loop goes back up: Done? is drawn below Wait, and every node still has a place of its own
    assert boxes["Done?"][1] > boxes["Wait"][3]
    assert len(boxes) == len(LOOP["States"])
    assert graph.nodes["Fan out"].caption == "Map · 2 states"
    assert graph.nodes["Both"].caption == "Parallel · 2 branches"
    assert graph.nodes["Wait"].caption == "Wait 30 s"
    assert graph.nodes["Start job"].caption == "λ StartJobFunction"
    assert graph.nodes["Start job"].retry == ("States.Timeout: up to 2 retries",)
    labels = {(e.source, e.target): e.label for e in graph.edges}
    assert labels[("Done?", "Fan out")] == '$.state == "SUCCEEDED" and not $.warnings is present'
    assert labels[("Done?", "Give up")] == "$.tries >= $.max"
    assert labels[("Start job", "Start job")] == "Busy"
    nodes, edges = mermaid_structure(to_mermaid(graph))
    assert all(s in nodes and t in nodes for s, _, t in edges)


def test_names_and_conditions_with_markup_stay_text_in_both_pictures():
    asl = {"StartAt": 'Say "hi" <b>|</b>', "States": {
        'Say "hi" <b>|</b>': {"Type": "Choice", "Default": "End & done",
                              "Choices": [{"Variable": "$.x", "StringEquals": '<a "b">', "Next": "End & done"}]},
        "End & done": {"Type": "Succeed"}}}
    graph = definition_graph(asl, "Markup")
    nodes, edges = mermaid_structure(to_mermaid(graph))  # quotes and pipes would break the line pattern
    assert len(edges) == len(graph.edges) == 4  # start, the branch, the default, end
    svg = to_svg(graph)
    root = ET.fromstring(svg)
    assert not list(root.iter(f"{SVG}b")) and not list(root.iter(f"{SVG}a"))
    assert 'Say "hi" <b>|</b>' in {g.get("data-state") for g in root.iter(f"{SVG}g")}


def test_a_highlighted_execution_colours_states_and_darkens_the_path_taken():
    graph = load_graph(STATEMACHINES / "training_pipeline.asl.json")
    path = [START, "Preprocess", "MergePreprocess?", "Train", "RecordFailure", "Failed", END]
    highlight = {"Preprocess": "succeeded", "Train": "caught", "RecordFailure": "succeeded", "Failed": "failed"}
    svg = ET.fromstring(to_svg(graph, highlight, path=path, id_prefix="run1"))
    strokes = {g.get("data-state"): g[1].get("stroke") for g in svg.iter(f"{SVG}g") if g.get("data-state")}
    assert strokes["Train"] == "#ec7211" and strokes["Failed"] == "#d13212" and strokes["Preprocess"] == "#1d8102"
    assert strokes["Register"] == "#aab7b8"  # not entered
    taken = [p for p in svg.iter(f"{SVG}path") if p.get("stroke") == "#16191f" and "edge" in p.get("class", "")]
    assert len(taken) == len(path) - 1
    # Train was caught: its Catch edge is the one taken, and RecordFailure moved on by its Next, not its Catch
    assert sum("catch" in p.get("class") for p in taken) == 1
    assert all(m.get("id").startswith("run1-") for m in svg.iter(f"{SVG}marker"))


@pytest.mark.parametrize(("rule", "text"), [
    ({"Variable": "$.gate.passed", "BooleanEquals": True}, "$.gate.passed == true"),
    ({"Variable": "$.n", "NumericLessThan": 3}, "$.n < 3"),
    ({"Variable": "$.s", "StringMatches": "log-*"}, '$.s matches "log-*"'),
    ({"Variable": "$.v", "IsNull": False}, "$.v is not null"),
    ({"Or": [{"Variable": "$.a", "TimestampGreaterThanPath": "$.b"},
             {"Variable": "$.c", "IsNumeric": True}]}, "$.a > $.b or $.c is numeric"),
    ({"Condition": "{% $states.input.ok %}"}, "$states.input.ok"),
])
def test_choice_conditions_read_as_short_expressions(rule, text):
    assert condition_text(rule) == text


def test_write_graphs_writes_a_picture_and_mermaid_text_per_state_machine(tmp_path):
    written = write_graphs(tmp_path / "out", STATEMACHINES)
    names = [p.name.removesuffix(".asl.json") for p in ASL_FILES]
    assert sorted(p.name for p in written) == sorted(f"{n}{s}" for n in names for s in (".svg", ".mmd"))
    for path in written:
        if path.suffix == ".svg":
            ET.parse(path)
        else:
            assert path.read_text().splitlines()[1] == "flowchart TD"


def test_state_names_that_clash_with_the_start_and_end_markers_are_refused():
    with pytest.raises(ValueError, match="reserved"):
        definition_graph({"StartAt": START, "States": {START: {"Type": "Succeed"}}})
    assert isinstance(definition_graph({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}), Graph)
