"""State machines as pictures: an ASL definition → a graph → Mermaid text (README) and a self-contained SVG.

The SVG is laid out in pure Python (no graphviz) by graph_layout.py and drawn by graph_svg.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

START, END = "(start)", "(end)"  # the console's Start and End markers; a state with either name is refused
Status = Literal["succeeded", "failed", "running", "caught"]
NAME_CHARS, LABEL_CHARS = 34, 48  # longer names and conditions are cut; the tooltip keeps them whole


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
        label = f'|"{_mermaid_text(cut(edge.label, LABEL_CHARS))}"|' if edge.label else ""
        lines.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    for css_class, style, kinds in (("failstate", "fill:#fde7e9,stroke:#d13212", ("Fail",)),
                                    ("succeedstate", "fill:#e3f4e5,stroke:#1d8102", ("Succeed",)),
                                    ("marker", "fill:#f2f3f3,stroke:#879596", ("Start", "End"))):
        members = [ids[n.name] for n in graph.nodes.values() if n.type in kinds]
        if members:
            lines += [f"    classDef {css_class} {style}", f"    class {','.join(members)} {css_class}"]
    return "\n".join(lines) + "\n"


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mermaid_text(text: str) -> str:
    """Mermaid's entity codes, so quotes, pipes and angle brackets in names or conditions stay text."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;"), ("|", "#124;")):
        text = text.replace(char, code)
    return text


# ------------------------------------------------------------------------------------------------- Files

def asl_name(path: Path) -> str:
    return path.name.removesuffix(".asl.json")


def load_graph(path: Path) -> Graph:
    return definition_graph(json.loads(path.read_text()), _pascal(asl_name(path)))


def _pascal(snake: str) -> str:
    """training_pipeline → TrainingPipeline, the template's logical id."""
    return "".join(part.capitalize() for part in snake.split("_"))

