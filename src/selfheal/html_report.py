"""report.html: report.json drawn for people, as one self-contained file (inline CSS, JS and SVG; no network).

Everything taken from the report is escaped: it holds user data (file names, reasons, payloads). Step inputs and
outputs travel as JSON in a non-executable script block and reach the page only through textContent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from .graph import END, START, Graph, Status, load_graph, to_svg

DEFAULT_DRIFT_THRESHOLD = 0.1  # Model Monitor's default for baseline drift
LOWER_IS_BETTER = {"logloss", "rmse", "mae"}
COLOURS = {"succeeded": "#1d8102", "failed": "#d13212", "caught": "#ec7211", "running": "#0073bb",
           "deployed": "#1d8102", "registered": "#0073bb", "rejected": "#ec7211", "rolled_back": "#d13212"}
SEVERITY: tuple[Status, ...] = ("failed", "running", "caught", "succeeded")


def write_html(report: dict[str, Any], out_path: Path, statemachines_dir: Path) -> Path:
    out_path.write_text(render_html(report, statemachines_dir), encoding="utf-8")
    return out_path


def render_html(report: dict[str, Any], statemachines_dir: Path) -> str:
    graphs = {graph.name: graph for graph in map(load_graph, sorted(statemachines_dir.glob("*.asl.json")))}
    executions = list(report.get("executions") or [])
    body = "".join([
        _header(report),
        _timeline_section(executions),
        _executions_section(executions, graphs),
        _gate_section(report),
        _drift_section(report),
        _serving_section(report),
        _ledger_section(report),
    ])
    data = json.dumps([[_step_data(step, label) for step, label in zip(e.get("steps", []), _labels(e, graphs),
                                                                       strict=True)] for e in executions])
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # never closes the block
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f"<title>selfheal run report</title><style>{CSS}</style></head><body>{body}"
            f'<script type="application/json" id="steps-data">{data}</script><script>{SCRIPT}</script></body></html>\n')


# ------------------------------------------------------------------------------------------------- helpers

def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _clock(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S") if epoch else "—"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    # no-break spaces: a duration never wraps inside a table cell
    return f"{value:.1f}\u00a0s" if value < 90 else f"{int(value // 60)}\u00a0min {value % 60:.0f}\u00a0s"


def _badge(text: str, colour_key: str | None = None) -> str:
    colour = COLOURS.get(colour_key or text.split(" ")[0], "#545b64")
    return f'<span class="badge" style="--c:{colour}">{_e(text)}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], empty: str, css: str = "") -> str:
    """Cells are HTML already escaped by the caller."""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _section(anchor: str, title: str, content: str, intro: str = "") -> str:
    lead = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{anchor}"><h2>{_e(title)}</h2>{lead}{content}</section>'


def _package(arn: str | None) -> str:
    """`…:model-package/selfheal-churn/3` → `selfheal-churn/3`, the full ARN in the tooltip."""
    if not arn:
        return "—"
    return f'<span title="{_e(arn)}">{_e(arn.split("model-package/")[-1])}</span>'


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else _e(value)


def _step_end(steps: list[dict[str, Any]], i: int, execution: dict[str, Any]) -> float | None:
    step = steps[i]
    if step.get("exited"):
        return step["exited"]
    return steps[i + 1]["entered"] if i + 1 < len(steps) else execution.get("stopped")


# ----------------------------------------------------------------------------------------------- outcomes

def step_outcome(step: dict[str, Any]) -> Status:
    """As the console colours it: a state that errored and still moved on was retried or caught."""
    if step.get("status") in ("failed", "running"):
        return step["status"]
    return "caught" if step.get("errors") else "succeeded"


def step_label(step: dict[str, Any], next_name: str | None, graph: Graph | None) -> str:
    outcome = step_outcome(step)
    if outcome != "caught":
        return outcome
    catch_targets = {e.target for e in graph.edges if e.source == step["name"] and e.kind == "catch"} if graph else ()
    return "caught" if next_name in catch_targets else f"retried ×{len(step['errors'])}"


def state_highlight(steps: list[dict[str, Any]]) -> dict[str, Status]:
    """One colour per state over all its visits: the most severe wins."""
    found: dict[str, Status] = {}
    for step in steps:
        outcome = step_outcome(step)
        current = found.get(step["name"])
        if current is None or SEVERITY.index(outcome) < SEVERITY.index(current):
            found[step["name"]] = outcome
    return found


def _path(execution: dict[str, Any]) -> list[str]:
    ended = execution.get("status") in ("SUCCEEDED", "FAILED")
    return [START, *(s["name"] for s in execution.get("steps", [])), *([END] if ended else [])]


def _labels(execution: dict[str, Any], graphs: dict[str, Graph]) -> list[str]:
    steps = execution.get("steps", [])
    graph = graphs.get(execution.get("state_machine", ""))
    return [step_label(step, steps[i + 1]["name"] if i + 1 < len(steps) else None, graph)
            for i, step in enumerate(steps)]


def _step_data(step: dict[str, Any], label: str) -> dict[str, Any]:
    keys = ("name", "type", "entered", "exited", "input", "output", "errors")
    return {key: step.get(key) for key in keys} | {"outcome": label}


# ---------------------------------------------------------------------------------------------- sections

def _header(report: dict[str, Any]) -> str:
    runs = report.get("runs") or []
    decisions = {d: sum(1 for r in runs if r.get("decision") == d) for d in ("deployed", "registered", "rejected",
                                                                            "failed")}
    monitoring = report.get("monitoring") or []
    violations = sum(1 for m in monitoring if m.get("violations"))
    serving = ", ".join(f"{_e(model)}: {_package(e.get('model_package_arn'))}"
                        for model, e in (report.get("endpoints") or {}).items()) or "nothing"
    facts = [f"{len(runs)} runs ({', '.join(f'{n} {d}' for d, n in decisions.items() if n) or 'none'})",
             f"{len(report.get('quarantined') or [])} quarantined uploads",
             f"{len(monitoring)} monitoring runs ({violations} with violations)", f"serving {serving}"]
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (("timeline", "Timeline"), ("executions", "Executions"),
                                                          ("gate", "Gate metrics"), ("drift", "Drift"),
                                                          ("serving", "Serving"), ("ledger", "Ledger")))
    return (f'<header><h1>selfheal run report</h1><p class="facts">{" · ".join(facts)}</p>'
            f"<nav>{nav}</nav>{_legend()}</header>")


def _legend() -> str:
    items = [("succeeded", "succeeded"), ("failed", "failed"), ("caught", "caught or retried"),
             ("running", "running")]
    chips = "".join(f'<span class="chip" style="--c:{COLOURS[k]}">{t}</span>' for k, t in items)
    return f'<p class="legend">{chips}<span class="chip grey">not entered</span></p>'


def _timeline_section(executions: list[dict[str, Any]]) -> str:
    intro = ("Each execution as a bar over time, its states as segments coloured by outcome; "
             "click a bar to open the execution.")
    return _section("timeline", "Timeline", _timeline_svg(executions) if executions else
                    '<p class="empty">No executions in this report.</p>', intro)


def _timeline_svg(executions: list[dict[str, Any]]) -> str:
    label_w, plot_w, row_h, top = 300.0, 980.0, 24.0, 30.0
    t0 = min(e["started"] for e in executions)
    ends = [_execution_end(e) for e in executions]
    span = max(max(ends) - t0, 1.0)
    scale = plot_w / span
    rows = []
    for index, (execution, end) in enumerate(zip(executions, ends, strict=True)):
        y = top + index * row_h
        x0 = label_w + (execution["started"] - t0) * scale
        name = f"{execution.get('state_machine', '')} · {execution.get('name', '')}"
        shown = _shorten(name, 44)
        bar = (f'<rect x="{x0:.1f}" y="{y + 4:.1f}" width="{max((end - execution["started"]) * scale, 2):.1f}" '
               f'height="{row_h - 8:.1f}" rx="3" fill="#eaeded" stroke="#aab7b8"><title>{_e(name)}: '
               f'{_e(execution.get("status"))}, {_seconds(end - execution["started"])}</title></rect>')
        steps = execution.get("steps", [])
        segments = "".join(_segment(step, _step_end(steps, i, execution), t0, scale, label_w, y + 6, row_h - 12)
                           for i, step in enumerate(steps))
        colour = COLOURS["failed" if execution.get("status") not in ("SUCCEEDED", "RUNNING") else "succeeded"]
        rows.append(f'<a href="#exec-{index}"><text x="{label_w - 8}" y="{y + row_h / 2 + 4:.1f}" '
                    f'text-anchor="end" font-size="11.5" fill="{colour}">{_e(shown)}</text>{bar}{segments}</a>')
    height = top + len(executions) * row_h + 10
    return (f'<svg class="timeline" viewBox="0 0 {label_w + plot_w + 20:.0f} {height:.0f}" '
            f'width="{label_w + plot_w + 20:.0f}" role="img" aria-label="timeline of executions">'
            f"{_time_axis(t0, span, scale, label_w, top, height)}{''.join(rows)}</svg>")


def _execution_end(execution: dict[str, Any]) -> float:
    times = [execution["started"], execution.get("stopped") or 0.0]
    times += [t for s in execution.get("steps", []) for t in (s.get("entered"), s.get("exited")) if t]
    return max(times)


def _segment(step: dict[str, Any], end: float | None, t0: float, scale: float, left: float, y: float,
             h: float) -> str:
    start = step.get("entered")
    if start is None:
        return ""
    end = end or start
    x, w = left + (start - t0) * scale, max((end - start) * scale, 1.5)
    outcome = step_outcome(step)
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{COLOURS[outcome]}" '
            f'fill-opacity="0.85"><title>{_e(step.get("name"))}: {outcome}, {_seconds(end - start)}</title></rect>')


def _time_axis(t0: float, span: float, scale: float, left: float, top: float, height: float) -> str:
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
                 if span / s <= 10), 86400.0)
    parts = [f'<text x="{left - 24}" y="{top - 10}" text-anchor="end" font-size="11" fill="#545b64">'
             f"from {_clock(t0)} UTC</text>"]
    for i in range(int(span // step) + 1):
        x = left + i * step * scale
        t = i * step
        text = f"+{t:g} s" if t < 60 else f"+{int(t // 60)}:{int(t % 60):02d}"
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{height - 6:.1f}" stroke="#eaeded"/>'
                     f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle" font-size="10.5" fill="#687078">'
                     f"{text}</text>")
    return "".join(parts)


def _executions_section(executions: list[dict[str, Any]], graphs: dict[str, Graph]) -> str:
    intro = ("Each execution's state machine with the path it took, as the Step Functions console shows it. "
             "Click a state or a row for its input and output.")
    blocks = [_execution_block(index, e, graphs.get(e.get("state_machine", "")), _labels(e, graphs))
              for index, e in enumerate(executions)]
    return _section("executions", "Executions", "".join(blocks) or '<p class="empty">No executions in this report.</p>',
                    intro)


def _execution_block(index: int, execution: dict[str, Any], graph: Graph | None, labels: list[str]) -> str:
    steps = execution.get("steps", [])
    status = execution.get("status") or "UNKNOWN"
    duration = (execution.get("stopped") or _execution_end(execution)) - execution["started"]
    summary = (f'<summary>{_badge(status.lower(), "succeeded" if status == "SUCCEEDED" else status.lower())} '
               f'<b>{_e(execution.get("state_machine"))}</b> {_e(execution.get("name"))} '
               f'<span class="muted">started {_clock(execution["started"])} UTC · {_seconds(duration)} · '
               f"{len(steps)} states</span></summary>")
    if graph is None:
        picture = f'<p class="empty">No definition of {_e(execution.get("state_machine"))} in statemachines/.</p>'
    else:
        picture = to_svg(graph, state_highlight(steps), path=_path(execution), id_prefix=f"x{index}")
    rows = []
    for i, (step, label) in enumerate(zip(steps, labels, strict=True)):
        end = _step_end(steps, i, execution)
        took = (end - step["entered"]) if end and step.get("entered") else None
        rows.append(f'<tr data-step="{i}" tabindex="0"><td>{i + 1}</td><td>{_e(step.get("name"))}</td>'
                    f'<td>{_e(step.get("type"))}</td><td>{_badge(label, step_outcome(step))}</td>'
                    f"<td>{_seconds(took)}</td></tr>")
    failure = ""
    if execution.get("error") or execution.get("cause"):
        failure = (f'<p class="failure"><b>{_e(execution.get("error"))}</b> '
                   f'<span class="cause">{_e(_shorten(execution.get("cause"), 400))}</span></p>')
    table = '<p class="empty">No state was entered.</p>' if not rows else (
        '<table class="steps"><thead><tr><th>#</th><th>state</th><th>type</th><th>outcome</th><th>took</th></tr>'
        f'</thead><tbody>{"".join(rows)}</tbody></table>')
    opened = " open" if index == 0 or status not in ("SUCCEEDED", "RUNNING") else ""
    return (f'<details class="execution" id="exec-{index}" data-exec="{index}"{opened}>{summary}{failure}'
            f'<div class="exec-body"><div class="graph">{picture}</div><div class="side">{table}'
            f'<div class="panel" aria-live="polite"><p class="muted">Click a state or a row to see its input and '
            f"output.</p></div></div></div></details>")


def _shorten(text: Any, limit: int) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _run_metric(run: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The gate's metric and threshold, from the configuration the run was started with."""
    metric = ((inputs.get(run.get("run_id", "")) or {}).get("config") or {}).get("metric") or {}
    if not metric.get("name") and run.get("metrics"):
        metric = {"name": next(iter(run["metrics"]))}
    return metric


def _gate_section(report: dict[str, Any]) -> str:
    runs = report.get("runs") or []
    inputs = {e.get("name", ""): e.get("input") or {} for e in report.get("executions") or []
              if e.get("state_machine") == "TrainingPipeline"}
    charts = []
    for model in dict.fromkeys(r.get("model") for r in runs):
        model_runs = [r for r in runs if r.get("model") == model]
        metrics = [_run_metric(r, inputs) for r in model_runs]
        name = next((m["name"] for m in metrics if m.get("name")), None)
        if name is None:
            charts.append(f'<p class="empty">{_e(model)}: no run reached the gate.</p>')
            continue
        charts.append(_gate_chart(str(model), name, model_runs, metrics))
    intro = ("The challenger's metric per run against the champion's, scored on the same held-out rows, and the "
             "threshold from the model's configuration.")
    return _section("gate", "Gate metrics: challenger vs champion",
                    "".join(charts) or '<p class="empty">No training runs in this report.</p>', intro)


def _gate_chart(model: str, name: str, runs: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> str:
    w, h, left, right, top, bottom = 720.0, 240.0, 56.0, 150.0, 16.0, 46.0
    challenger = [(r.get("metrics") or {}).get(name) for r in runs]
    champion = [(r.get("champion_metrics") or {}).get(name) for r in runs]
    thresholds = [m.get("threshold") for m in metrics]
    values = [v for v in challenger + champion + thresholds if isinstance(v, int | float)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.15 or 0.05
    low, high = low - pad, high + pad
    step_x = (w - left - right) / max(len(runs), 1)

    def y(v: float) -> float:
        return top + (high - v) / (high - low) * (h - top - bottom)

    def x(i: int) -> float:
        return left + step_x * (i + 0.5)

    parts = [_y_axis(low, high, y, left, w - right)]
    line = [f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(challenger) if isinstance(v, int | float)]
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#0073bb" stroke-width="1.5"/>')
    for i, run in enumerate(runs):
        parts.append(_gate_marks(x(i), y, h - bottom, (challenger[i], champion[i], thresholds[i]), step_x, run,
                                 name))
        parts.append(f'<text x="{x(i):.1f}" y="{h - bottom + 16:.1f}" text-anchor="middle" font-size="10.5" '
                     f'fill="#545b64">{i + 1} · {_e(run.get("trigger"))}</text><text x="{x(i):.1f}" '
                     f'y="{h - bottom + 30:.1f}" text-anchor="middle" font-size="10.5" '
                     f'fill="{COLOURS.get(run.get("decision") or "", "#545b64")}">{_e(run.get("decision"))}</text>')
    parts.append(_gate_legend(w - right + 14, top + 6))
    better = "lower is better" if name in LOWER_IS_BETTER else "higher is better"
    missing = "" if any(t is not None for t in thresholds) else " · no threshold found in the runs' configuration"
    return (f'<figure class="chart"><figcaption>{_e(model)}: {_e(name)} ({better}){missing}</figcaption>'
            f'<svg viewBox="0 0 {w:.0f} {h:.0f}" width="{w:.0f}" role="img" aria-label="gate metrics of '
            f'{_e(model)}">{"".join(parts)}</svg></figure>')


def _gate_marks(cx: float, y: Callable[[float], float], floor: float, values: tuple[Any, Any, Any],
                step_x: float, run: dict[str, Any], name: str) -> str:
    challenger, champion, threshold = values
    parts = []
    if isinstance(threshold, int | float):
        parts.append(f'<line x1="{cx - step_x / 2:.1f}" x2="{cx + step_x / 2:.1f}" y1="{y(threshold):.1f}" '
                     f'y2="{y(threshold):.1f}" stroke="#d13212" stroke-dasharray="5 3"><title>threshold '
                     f"{threshold:g}</title></line>")
    if isinstance(champion, int | float) and isinstance(challenger, int | float):
        parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(champion):.1f}" y2="{y(challenger):.1f}" '
                     'stroke="#aab7b8" stroke-width="3"/>')
    if isinstance(champion, int | float):
        parts.append(f'<rect x="{cx - 5:.1f}" y="{y(champion) - 5:.1f}" width="10" height="10" fill="#ffffff" '
                     f'stroke="#545b64" stroke-width="2"><title>champion {name} {champion:.4g} on the same rows'
                     "</title></rect>")
    if isinstance(challenger, int | float):
        parts.append(f'<circle cx="{cx:.1f}" cy="{y(challenger):.1f}" r="6" fill="#0073bb"><title>'
                     f'{_e(run.get("run_id"))}: challenger {name} {challenger:.4g} · {_e(run.get("decision"))}'
                     "</title></circle>")
    else:  # a run that never reached the gate still has its place on the axis
        parts.append(f'<text x="{cx:.1f}" y="{floor - 6:.1f}" text-anchor="middle" font-size="14" '
                     f'fill="#d13212">×<title>{_e(run.get("run_id"))}: no metrics ({_e(run.get("decision"))})</title>'
                     "</text>")
    return "".join(parts)


def _gate_legend(x: float, y: float) -> str:
    return (f'<circle cx="{x + 6}" cy="{y}" r="6" fill="#0073bb"/><text x="{x + 18}" y="{y + 4}" font-size="11">'
            f'challenger</text><rect x="{x + 1}" y="{y + 17}" width="10" height="10" fill="#ffffff" stroke="#545b64" '
            f'stroke-width="2"/><text x="{x + 18}" y="{y + 26}" font-size="11">champion</text><line x1="{x}" '
            f'x2="{x + 12}" y1="{y + 44}" y2="{y + 44}" stroke="#d13212" stroke-dasharray="5 3"/><text x="{x + 18}" '
            f'y="{y + 48}" font-size="11">threshold</text>')


def _y_axis(low: float, high: float, y: Callable[[float], float], left: float, right: float) -> str:
    step = _nice_step((high - low) / 5)
    parts = [f'<line x1="{left}" x2="{left}" y1="{y(high):.1f}" y2="{y(low):.1f}" stroke="#aab7b8"/>']
    tick = math.ceil(low / step) * step
    while tick <= high:
        parts.append(f'<line x1="{left}" x2="{right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eaeded"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end" font-size="10.5" '
                     f'fill="#687078">{tick:.4g}</text>')
        tick += step
    return "".join(parts)


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _drift_section(report: dict[str, Any]) -> str:
    monitoring = report.get("monitoring") or []
    thresholds = _configured_drift_thresholds(report)
    cards = [_drift_card(item, thresholds.get(item.get("model") or "")) for item in monitoring]
    intro = ("Per-feature drift distance of each monitoring execution (L-infinity between the baseline's and the "
             "captured traffic's distributions, as Model Monitor computes it) against the drift threshold.")
    return _section("drift", "Drift per feature", "".join(cards) or
                    '<p class="empty">No monitoring executions in this report.</p>', intro)


def _configured_drift_thresholds(report: dict[str, Any]) -> dict[str, float]:
    """monitor.drift_threshold from the newest training run of each model (its input holds the config)."""
    found: dict[str, float] = {}
    for execution in report.get("executions") or []:
        data = execution.get("input") or {}
        value = ((data.get("config") or {}).get("monitor") or {}).get("drift_threshold")
        if execution.get("state_machine") == "TrainingPipeline" and isinstance(value, int | float):
            found[str(data.get("model"))] = float(value)
    return found


def _drift_card(item: dict[str, Any], configured: float | None) -> str:
    if isinstance(item.get("threshold"), int | float):
        threshold, note, css = float(item["threshold"]), "", ""
    elif configured is not None:
        threshold, note, css = configured, "threshold from the model's configuration (monitor.drift_threshold)", "muted"
    else:
        threshold, css = DEFAULT_DRIFT_THRESHOLD, "note"
        note = f"no drift threshold in the report for this model: the line shows Model Monitor's default, {threshold}"
    violations = item.get("violations") or []
    status = str(item.get("status") or "unknown")
    head = (f'<h3>{_e(item.get("model"))} · {_e(item.get("execution"))} '
            f'{_badge(status, "failed" if violations or status == "Failed" else "succeeded")} '
            f'{_badge("action " + str(item.get("action")), "caught" if item.get("action") == "retrain" else None)}'
            "</h3>")
    facts = [f"{_e(item.get('rows'))} rows" if item.get("rows") is not None else "",
             _e(item.get("reason")), f'retrain run {_e(item.get("run_id"))}' if item.get("run_id") else ""]
    drift = item.get("drift") or {}
    chart = _drift_chart(drift, threshold, {v.get("feature_name") for v in violations
                                            if v.get("constraint_check_type") == "baseline_drift_check"})
    if not drift:
        chart = '<p class="empty">No drift distances in this monitoring run.</p>'
    listed = _table(["feature", "check"], [(_e(v.get("feature_name")), _e(v.get("constraint_check_type")))
                                           for v in violations], "No violations.", "compact")
    return (f'<div class="card">{head}<p class="muted">{" · ".join(f for f in facts if f)}</p>'
            f'{f"<p class={css}>{_e(note)}</p>" if note else ""}<div class="drift">{chart}{listed}</div></div>')


def _drift_chart(drift: dict[str, Any], threshold: float, violated: set[Any]) -> str:
    rows = sorted(((str(k), float(v)) for k, v in drift.items() if isinstance(v, int | float)), key=lambda kv: -kv[1])
    label_w, plot_w, row_h = 170.0, 420.0, 20.0
    top = max([threshold * 1.25] + [v * 1.1 for _, v in rows])
    scale = plot_w / top
    bars = []
    for i, (feature, value) in enumerate(rows):
        y = 22 + i * row_h
        over = value > threshold or feature in violated
        bars.append(f'<text x="{label_w - 8}" y="{y + 13:.1f}" text-anchor="end" font-size="11.5">'
                    f"{_e(_shorten(feature, 26))}<title>{_e(feature)}</title></text>"
                    f'<rect x="{label_w}" y="{y + 3:.1f}" width="{max(value * scale, 1):.1f}" height="{row_h - 6}" '
                    f'fill="{COLOURS["failed" if over else "succeeded"]}" fill-opacity="0.8"><title>{_e(feature)}: '
                    f'{value:.4g}{" (violation)" if over else ""}</title></rect>'
                    f'<text x="{label_w + value * scale + 5:.1f}" y="{y + 13:.1f}" font-size="10.5" fill="#545b64">'
                    f"{value:.3f}</text>")
    height = 30 + len(rows) * row_h
    tx = label_w + threshold * scale
    line = (f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="16" y2="{height - 4:.1f}" stroke="#d13212" '
            f'stroke-dasharray="5 3"/><text x="{tx:.1f}" y="12" text-anchor="middle" font-size="10.5" '
            f'fill="#d13212">threshold {threshold:g}</text>')
    width = label_w + plot_w + 50
    return (f'<svg viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" role="img" aria-label="drift per '
            f'feature">{"".join(bars)}{line}</svg>')


def _serving_section(report: dict[str, Any]) -> str:
    endpoints = report.get("endpoints") or {}
    deploys = [e for e in report.get("executions") or [] if e.get("state_machine") == "DeployPipeline"]
    blocks = [_endpoint_block(str(model), endpoint, deploys) for model, endpoint in endpoints.items()]
    traffic = _table(["model", "rows sent", "errors"],
                     [(_e(t.get("model")), _e(t.get("rows")),
                       f'<span class="{"bad" if t.get("errors") else ""}">{_e(t.get("errors"))}</span>')
                      for t in report.get("traffic") or []], "No traffic was sent.", "compact")
    intro = "Which model package served each endpoint, and when; rollouts, and rollbacks with their reasons."
    return _section("serving", "Serving: which model, when",
                    ("".join(blocks) or '<p class="empty">No endpoint was deployed.</p>') +
                    f"<h3>Traffic</h3>{traffic}", intro)


def _endpoint_block(model: str, endpoint: dict[str, Any], deploys: list[dict[str, Any]]) -> str:
    serving: str | None = None
    rows, chips = [], []
    for i, entry in enumerate(endpoint.get("history") or []):
        arn, outcome = entry.get("model_package_arn"), str(entry.get("outcome"))
        if outcome == "deployed":
            serving = arn
        when = entry.get("at") or _deployed_at(arn, entry.get("run_id"), deploys)
        when_text = _e(when) if isinstance(when, str) else (f"{_clock(when)} UTC" if when else "—")
        rows.append((str(i + 1), when_text, _package(arn), _badge(outcome.replace("_", " "), outcome),
                     _e(entry.get("run_id")), _e(entry.get("reason")), _package(serving)))
        chips.append(f'<span class="step" style="--c:{COLOURS.get(outcome, "#545b64")}">{_package(arn)} '
                     f'<small>{_e(outcome.replace("_", " "))}</small></span>')
    strip = f'<p class="strip">{" → ".join(chips)}</p>' if chips else ""
    table = _table(["#", "when", "package", "outcome", "run", "reason", "serving after"], rows,
                   "No rollout recorded.")
    return (f'<div class="card"><h3>{_e(model)} · {_e(endpoint.get("endpoint_name"))} '
            f'{_badge(str(endpoint.get("status")), "succeeded" if endpoint.get("status") == "InService" else "failed")}'
            f'</h3><p>serving now: {_package(endpoint.get("model_package_arn"))}</p>{strip}{table}</div>')


def _deployed_at(arn: str | None, run_id: str | None, deploys: list[dict[str, Any]]) -> float | None:
    """When a rollout ended: the DeployPipeline execution that took this package (for this run)."""
    for execution in deploys:
        data = execution.get("input") or {}
        if data.get("model_package_arn") == arn and (run_id is None or data.get("run_id") in (None, run_id)):
            return execution.get("stopped")
    return None


def _ledger_section(report: dict[str, Any]) -> str:
    runs = [(_e(r.get("run_id")), _e(r.get("model")), _e(r.get("trigger")),
             _badge(str(r.get("status")).lower(), "succeeded" if r.get("status") == "SUCCEEDED" else "failed"),
             _badge(str(r.get("decision")), r.get("decision")),
             " · ".join(f"{_e(k)} {_number(v)}" for k, v in (r.get("metrics") or {}).items()) or "—",
             "<ul>" + "".join(f"<li>{_e(reason)}</li>" for reason in r.get("gate", {}).get("reasons", [])) + "</ul>"
             if (r.get("gate") or {}).get("reasons") else _e(_shorten(r.get("cause"), 160)) or "—",
             _package(r.get("model_package_arn")), _seconds(r.get("seconds")))
            for r in report.get("runs") or []]
    quarantined = [(_e(q.get("model")), f"<code>{_e(q.get('key'))}</code>", _e(q.get("reason")),
                    f"<code>{_e(q.get('quarantine_key'))}</code>" if q.get("quarantine_key") else "—")
                   for q in report.get("quarantined") or []]
    return _section("ledger", "Ledger", "<h3>Runs</h3>" + _table(
        ["run", "model", "trigger", "status", "decision", "metrics", "gate reasons / cause", "package", "took"],
        runs, "No runs.") + "<h3>Quarantined uploads</h3>" + _table(
        ["model", "upload", "reason", "kept at"], quarantined, "No upload was quarantined."))


CSS = """
:root{--ink:#16191f;--muted:#687078;--line:#eaeded;font-family:'Amazon Ember','Helvetica Neue',Arial,sans-serif}
body{margin:0;color:var(--ink);background:#f2f3f3;font-size:14px}
header{background:#232f3e;color:#fff;padding:18px 28px}
header h1{margin:0 0 6px;font-size:22px}
header nav a{color:#fff;margin-right:16px;font-weight:bold}
.facts{margin:0 0 8px;color:#d5dbdb}
section{background:#fff;margin:18px 24px;padding:14px 20px;border-radius:8px;box-shadow:0 1px 2px #0002}
h2{font-size:18px;margin:4px 0 8px}
h3{font-size:15px;margin:12px 0 6px}
.intro,.muted{color:var(--muted)}
.note{color:#8d6605;background:#fffbeb;padding:4px 8px;border-radius:4px;display:inline-block}
.empty{color:var(--muted);font-style:italic}
.legend{margin:8px 0 0}
.chip{display:inline-block;padding:1px 10px;margin-right:8px;border-radius:10px;border:2px solid var(--c);
background:#fff;color:#16191f;font-size:12px}
.chip.grey{--c:#aab7b8;background:#f2f3f3;color:#687078}
.badge{display:inline-block;padding:0 8px;border-radius:9px;background:var(--c);color:#fff;font-size:12px;
white-space:nowrap}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:normal;font-size:12px}
table.compact{width:auto}
td ul{margin:0;padding-left:16px}
code{font-size:12px;word-break:break-all}
.bad{color:#d13212;font-weight:bold}
details.execution{border:1px solid var(--line);border-radius:6px;margin:8px 0;padding:6px 10px}
details.execution summary{cursor:pointer;padding:4px 0}
.failure{margin:6px 0;color:#d13212}
.failure .cause{color:var(--muted);font-family:monospace;font-size:12px;word-break:break-all}
.exec-body{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:16px;align-items:start}
.graph{overflow:auto}
.graph svg{max-width:100%;height:auto}
.graph [data-state]{cursor:pointer}
.graph [data-state].selected>:first-of-type{stroke-width:4}
.steps tr{cursor:pointer}
.steps tr:hover,.steps tr.selected{background:#f1faff}
.panel{position:sticky;top:8px;border:1px solid var(--line);border-radius:6px;padding:8px 10px;margin-top:8px;
max-height:80vh;overflow:auto}
.panel pre{background:#f8f8f8;padding:6px;font-size:11.5px;white-space:pre-wrap;word-break:break-all;margin:4px 0}
.panel h4{margin:2px 0 6px}
.card{border:1px solid var(--line);border-radius:6px;padding:6px 12px;margin:8px 0}
.drift{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.strip .step{display:inline-block;border-left:4px solid var(--c);padding:2px 8px;background:#f8f8f8}
figure.chart{margin:8px 0}
figcaption{font-weight:bold;margin-bottom:4px}
svg{font-family:inherit}
svg.timeline{max-width:100%;height:auto}
svg.timeline a:hover text{text-decoration:underline}
"""

SCRIPT = """
(() => {
  const steps = JSON.parse(document.getElementById('steps-data').textContent);
  const pretty = (value) => {
    if (typeof value === 'string') {
      try { return JSON.stringify(JSON.parse(value), null, 2); } catch (e) { return value; }
    }
    return JSON.stringify(value, null, 2);
  };
  const time = (t) => (t ? new Date(t * 1000).toISOString().slice(11, 23) + ' UTC' : '—');
  const add = (parent, tag, text) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  };
  const show = (block, index, stateName) => {
    const panel = block.querySelector('.panel');
    panel.replaceChildren();
    block.querySelectorAll('.selected').forEach((node) => node.classList.remove('selected'));
    const all = steps[Number(block.dataset.exec)];
    if (index < 0) {
      add(panel, 'h4', stateName);
      add(panel, 'p', 'Not entered in this execution.');
      return;
    }
    const step = all[index];
    block.querySelector('tr[data-step="' + index + '"]').classList.add('selected');
    block.querySelectorAll('[data-state]').forEach((node) => {
      if (node.dataset.state === step.name) node.classList.add('selected');
    });
    const visits = all.filter((s) => s.name === step.name).length;
    add(panel, 'h4', step.name + ' (' + step.type + ')');
    add(panel, 'p', step.outcome + ' · entered ' + time(step.entered) + ' · exited ' + time(step.exited) +
        (visits > 1 ? ' · visited ' + visits + ' times: pick a row for each visit' : ''));
    (step.errors || []).forEach((error, i) => {
      add(panel, 'b', 'Error ' + (i + 1) + ': ' + (error.error || error.event));
      add(panel, 'pre', pretty(error.cause));
    });
    add(panel, 'b', 'Input');
    add(panel, 'pre', pretty(step.input));
    add(panel, 'b', 'Output');
    add(panel, 'pre', step.output === null ? '(none)' : pretty(step.output));
  };
  const pick = (target) => {
    const link = target.closest('a[href^="#exec-"]');
    if (link) { document.querySelector(link.getAttribute('href')).open = true; return; }
    const block = target.closest('[data-exec]');
    if (!block) return;
    const row = target.closest('tr[data-step]');
    if (row) { show(block, Number(row.dataset.step)); return; }
    const state = target.closest('[data-state]');
    if (!state) return;
    const all = steps[Number(block.dataset.exec)];
    let index = -1;
    all.forEach((s, i) => { if (s.name === state.dataset.state) index = i; });
    show(block, index, state.dataset.state);
  };
  document.addEventListener('click', (event) => pick(event.target));
  document.addEventListener('keydown', (event) => { if (event.key === 'Enter') pick(event.target); });
})();
"""
