"""report.html: report.json drawn for people, as one self-contained file (inline CSS, JS and SVG; no network).

The page is templates/report.html.j2 (autoescaped: the report holds user data such as file names, reasons and
payloads); this module only works out what to draw: the outcome of each state, and the geometry of the charts.
Step inputs and outputs travel as JSON in a non-executable script block and reach the page only through
textContent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup
from selfheal_shared.config import LOWER_IS_BETTER

from selfheal.graph import END, START, Graph, Status, load_graph
from selfheal.graph_svg import to_svg

from .page import render_page, ticks

DEFAULT_DRIFT_THRESHOLD = 0.1  # Model Monitor's default for baseline drift
SEVERITY: tuple[Status, ...] = ("failed", "running", "caught", "succeeded")
SECTIONS = (("timeline", "Timeline"), ("executions", "Executions"), ("gate", "Gate metrics"), ("drift", "Drift"),
            ("quality", "Model quality"), ("serving", "Serving"), ("ledger", "Ledger"))


def write_html(report: dict[str, Any], out_path: Path, statemachines_dir: Path) -> Path:
    out_path.write_text(render_html(report, statemachines_dir), encoding="utf-8")
    return out_path


def render_html(report: dict[str, Any], statemachines_dir: Path) -> str:
    graphs = {graph.name: graph for graph in map(load_graph, sorted(statemachines_dir.glob("*.asl.json")))}
    executions = list(report.get("executions") or [])
    blocks = [execution_block(index, e, graphs.get(e.get("state_machine", ""))) for index, e in enumerate(executions)]
    return render_page("report.html.j2", "report.js", "report.css", report=report, sections=SECTIONS,
                       summary=header_facts(report), timeline=timeline(executions), executions=blocks,
                       gate=gate_charts(report), drift=drift_cards(report), quality=quality_charts(report),
                       serving=serving(report),
                       steps=[step_data(e, b) for e, b in zip(executions, blocks, strict=True)]) + "\n"


def step_data(execution: dict[str, Any], block: dict[str, Any]) -> list[dict[str, Any]]:
    """What the page's script shows of each step when it is clicked."""
    keys = ("name", "type", "entered", "exited", "input", "output", "errors")
    return [{key: step.get(key) for key in keys} | {"outcome": row["label"]}
            for step, row in zip(execution.get("steps", []), block["rows"], strict=True)]


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


def _step_end(steps: list[dict[str, Any]], i: int, execution: dict[str, Any]) -> float | None:
    step = steps[i]
    if step.get("exited"):
        return step["exited"]
    return steps[i + 1]["entered"] if i + 1 < len(steps) else execution.get("stopped")


def _execution_end(execution: dict[str, Any]) -> float:
    times = [execution["started"], execution.get("stopped") or 0.0]
    times += [t for s in execution.get("steps", []) for t in (s.get("entered"), s.get("exited")) if t]
    return max(times)


# ----------------------------------------------------------------------------------------------- sections

def header_facts(report: dict[str, Any]) -> list[str]:
    runs = report.get("runs") or []
    decisions = {d: sum(1 for r in runs if r.get("decision") == d) for d in ("deployed", "registered", "rejected",
                                                                            "failed")}
    monitoring = report.get("monitoring") or []
    executions = {m.get("execution") for m in monitoring}
    violations = len({m.get("execution") for m in monitoring if m.get("violations")})
    return [f"{len(runs)} runs ({', '.join(f'{n} {d}' for d, n in decisions.items() if n) or 'none'})",
            f"{len(report.get('quarantined') or [])} quarantined uploads",
            f"{len(executions)} monitoring runs ({violations} with violations)"]


def timeline(executions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Each execution as a bar over time, its states as segments."""
    if not executions:
        return None
    label_w, plot_w, row_h, top = 300.0, 980.0, 24.0, 30.0
    t0 = min(e["started"] for e in executions)
    ends = [_execution_end(e) for e in executions]
    span = max(max(ends) - t0, 1.0)
    scale = plot_w / span
    rows = []
    for index, (execution, end) in enumerate(zip(executions, ends, strict=True)):
        steps = execution.get("steps", [])
        segments = []
        for i, step in enumerate(steps):
            start = step.get("entered")
            if start is not None:
                finish = _step_end(steps, i, execution) or start
                segments.append({"x": label_w + (start - t0) * scale, "w": max((finish - start) * scale, 1.5),
                                 "name": step.get("name"), "outcome": step_outcome(step), "took": finish - start})
        rows.append({"index": index, "y": top + index * row_h, "x": label_w + (execution["started"] - t0) * scale,
                     "w": max((end - execution["started"]) * scale, 2), "took": end - execution["started"],
                     "name": f"{execution.get('state_machine', '')} · {execution.get('name', '')}",
                     "status": execution.get("status"), "segments": segments,
                     "ok": execution.get("status") in ("SUCCEEDED", "RUNNING")})
    height = top + len(executions) * row_h + 10
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
                 if span / s <= 10), 86400.0)
    axis = [{"x": label_w + i * step * scale, "t": i * step} for i in range(int(span // step) + 1)]
    return {"rows": rows, "axis": axis, "t0": t0, "label_w": label_w, "width": label_w + plot_w + 20,
            "height": height, "top": top, "row_h": row_h}


def execution_block(index: int, execution: dict[str, Any], graph: Graph | None) -> dict[str, Any]:
    steps = execution.get("steps", [])
    rows = []
    for i, step in enumerate(steps):
        end = _step_end(steps, i, execution)
        rows.append({"name": step.get("name"), "type": step.get("type"), "outcome": step_outcome(step),
                     "label": step_label(step, steps[i + 1]["name"] if i + 1 < len(steps) else None, graph),
                     "took": (end - step["entered"]) if end and step.get("entered") else None})
    status = execution.get("status") or "UNKNOWN"
    path = [START, *(s["name"] for s in steps), *([END] if status in ("SUCCEEDED", "FAILED") else [])]
    picture = Markup(to_svg(graph, state_highlight(steps), path=path, id_prefix=f"x{index}")) if graph else None  # noqa: S704 - graph.py escapes
    return {"index": index, "execution": execution, "status": status, "rows": rows, "picture": picture,
            "took": (execution.get("stopped") or _execution_end(execution)) - execution["started"],
            "open": index == 0 or status not in ("SUCCEEDED", "RUNNING")}


def _run_metric(run: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The gate's metric and threshold, from the configuration the run was started with."""
    metric = ((inputs.get(run.get("run_id", "")) or {}).get("config") or {}).get("metric") or {}
    if not metric.get("name") and run.get("metrics"):
        metric = {"name": next(iter(run["metrics"]))}
    return metric


def gate_charts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model: each run's challenger against its champion on the same rows, and the threshold."""
    runs = report.get("runs") or []
    inputs = {e.get("name", ""): e.get("input") or {} for e in report.get("executions") or []
              if e.get("state_machine") == "TrainingPipeline"}
    charts = []
    for model in dict.fromkeys(r.get("model") for r in runs):
        model_runs = [r for r in runs if r.get("model") == model]
        metrics = [_run_metric(r, inputs) for r in model_runs]
        name = next((m["name"] for m in metrics if m.get("name")), None)
        charts.append({"model": model, "name": name} | (_gate_geometry(name, model_runs, metrics) if name else {}))
    return charts


class _Axis:
    """A chart's value axis: the values' range padded by 15%, mapped onto the plot's height."""

    def __init__(self, values: list[float | None], h: float, top: float, bottom: float) -> None:
        found = [v for v in values if v is not None]
        low, high = (min(found), max(found)) if found else (0.0, 1.0)
        pad = (high - low) * 0.15 or 0.05
        self.low, self.high, self.top, self.span = low - pad, high + pad, top, h - top - bottom

    def __call__(self, value: float | None) -> float | None:
        return None if value is None else self.top + (self.high - value) / (self.high - self.low) * self.span

    def frame(self) -> dict[str, Any]:
        return {"ticks": [(tick, self(tick)) for tick in ticks(self.low, self.high)], "top_y": self(self.high),
                "bottom_y": self(self.low)}


def _gate_geometry(name: str, runs: list[dict[str, Any]], metrics: list[dict[str, Any]]) -> dict[str, Any]:
    w, h, left, right, top, bottom = 720.0, 240.0, 56.0, 150.0, 16.0, 46.0
    challenger = [_finite((r.get("metrics") or {}).get(name)) for r in runs]
    champion = [_finite((r.get("champion_metrics") or {}).get(name)) for r in runs]
    thresholds = [_finite(m.get("threshold")) for m in metrics]
    y = _Axis(challenger + champion + thresholds, h, top, bottom)
    step_x = (w - left - right) / max(len(runs), 1)

    marks = [{"x": left + step_x * (i + 0.5), "run": run, "challenger": challenger[i], "champion": champion[i],
              "threshold": thresholds[i], "y_challenger": y(challenger[i]), "y_champion": y(champion[i]),
              "y_threshold": y(thresholds[i])} for i, run in enumerate(runs)]
    return {"w": w, "h": h, "left": left, "right": w - right, "floor": h - bottom, "step_x": step_x, "marks": marks,
            "line": [(m["x"], m["y_challenger"]) for m in marks if m["y_challenger"] is not None], **y.frame(),
            "better": "lower is better" if name in LOWER_IS_BETTER else "higher is better",
            "has_threshold": any(t is not None for t in thresholds)}


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _configured_drift_thresholds(report: dict[str, Any]) -> dict[str, float]:
    """monitor.drift_threshold from the newest training run of each model (its input holds the config)."""
    found: dict[str, float] = {}
    for execution in report.get("executions") or []:
        data = execution.get("input") or {}
        value = ((data.get("config") or {}).get("monitor") or {}).get("drift_threshold")
        if execution.get("state_machine") == "TrainingPipeline" and isinstance(value, int | float):
            found[str(data.get("model"))] = float(value)
    return found


def drift_cards(report: dict[str, Any]) -> list[dict[str, Any]]:
    configured = _configured_drift_thresholds(report)
    return [_drift_card(item, configured.get(item.get("model") or "")) for item in report.get("monitoring") or []
            if item.get("kind", "data") == "data"]


def _drift_card(item: dict[str, Any], configured: float | None) -> dict[str, Any]:
    if isinstance(item.get("threshold"), int | float):
        threshold, note, css = float(item["threshold"]), "", ""
    elif configured is not None:
        threshold, note, css = configured, "threshold from the model's configuration (monitor.drift_threshold)", "muted"
    else:
        threshold, css = DEFAULT_DRIFT_THRESHOLD, "note"
        note = f"no drift threshold in the report for this model: the line shows Model Monitor's default, {threshold}"
    violations = item.get("violations") or []
    drifted = {v.get("feature_name") for v in violations if v.get("constraint_check_type") == "baseline_drift_check"}
    values = sorted(((str(k), float(v)) for k, v in (item.get("drift") or {}).items() if isinstance(v, int | float)),
                    key=lambda kv: -kv[1])
    label_w, plot_w, row_h = 170.0, 420.0, 20.0
    scale = plot_w / max([threshold * 1.25] + [v * 1.1 for _, v in values])
    bars = [{"feature": feature, "value": value, "y": 22 + i * row_h, "w": max(value * scale, 1),
             "over": value > threshold or feature in drifted} for i, (feature, value) in enumerate(values)]
    return {"item": item, "threshold": threshold, "note": note, "css": css, "violations": violations, "bars": bars,
            "label_w": label_w, "scale": scale, "row_h": row_h, "height": 30 + len(values) * row_h,
            "width": label_w + plot_w + 50, "flagged": bool(violations) or item.get("status") == "Failed"}


def quality_charts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per model: the configured metric of each quality analysis, realized (from labels) and estimated (from the
    model's own scores), against the threshold; and what each execution decided, and why."""
    charts = []
    checks = [m for m in report.get("monitoring") or [] if m.get("kind") == "model_quality"]
    for model in dict.fromkeys(m.get("model") for m in checks):
        entries = [m for m in checks if m.get("model") == model]
        name = next((m["metric"] for m in entries if m.get("metric")), None)
        if name is None:
            continue
        realized = [_finite((m.get("metrics") or {}).get(name)) for m in entries]
        estimated = [_finite((m.get("estimated") or {}).get(name)) for m in entries]
        threshold = next((_finite(m.get("threshold")) for m in entries if _finite(m.get("threshold")) is not None),
                         None)
        charts.append({"model": model, "name": name, "entries": entries, "threshold": threshold}
                      | _series_geometry(realized, estimated, threshold, [m.get("action") for m in entries]))
    return charts


def _series_geometry(realized: list[float | None], estimated: list[float | None], threshold: float | None,
                     actions: list[Any]) -> dict[str, Any]:
    w, h, left, right, top, bottom = 720.0, 220.0, 56.0, 150.0, 16.0, 40.0
    y = _Axis(realized + estimated + [threshold], h, top, bottom)
    step_x = (w - left - right) / max(len(realized), 1)

    points = [{"x": left + step_x * (i + 0.5), "realized": r, "estimated": e, "y_realized": y(r),
               "y_estimated": y(e), "action": actions[i]} for i, (r, e) in enumerate(zip(realized, estimated,
                                                                                         strict=True))]
    return {"w": w, "h": h, "left": left, "right": w - right, "floor": h - bottom, "points": points,
            "y_threshold": y(threshold), **y.frame(),
            "realized_line": [(p["x"], p["y_realized"]) for p in points if p["y_realized"] is not None],
            "estimated_line": [(p["x"], p["y_estimated"]) for p in points if p["y_estimated"] is not None]}


def serving(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per endpoint: each rollout, and which package served after it."""
    deploys = [e for e in report.get("executions") or [] if e.get("state_machine") == "DeployPipeline"]
    found = []
    for model, endpoint in (report.get("endpoints") or {}).items():
        after: str | None = None
        history = []
        for entry in endpoint.get("history") or []:
            if entry.get("outcome") == "deployed":
                after = entry.get("model_package_arn")
            history.append(entry | {"when": entry.get("at") or _deployed_at(entry, deploys), "serving_after": after})
        found.append({"model": model, "endpoint": endpoint, "history": history})
    return found


def _deployed_at(entry: dict[str, Any], deploys: list[dict[str, Any]]) -> float | None:
    """When a rollout ended: the DeployPipeline execution that took this package (for this run)."""
    arn, run_id = entry.get("model_package_arn"), entry.get("run_id")
    for execution in deploys:
        data = execution.get("input") or {}
        if data.get("model_package_arn") == arn and (run_id is None or data.get("run_id") in (None, run_id)):
            return execution.get("stopped")
    return None
