"""Run a scenario on the local cloud: each step until everything it triggered has finished."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from .html_report import write_html
from .localcloud import LocalCloud
from .localcloud.cloud import REPO_ROOT
from .report import build_report, endpoint_name, executions
from .scenario import Scenario, Step

Print = Callable[[str], None]
STEP_TIMEOUT_SECONDS = 900
STATEMACHINES = REPO_ROOT / "statemachines"


def run_scenario(scenario: Scenario, out_dir: Path, echo: Print = print,
                 cloud_factory: Callable[[Path], LocalCloud] = LocalCloud) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with cloud_factory(out_dir / "cloud") as cloud:
        for fault in scenario.faults:
            cloud.faults.add(fault["target"], fault["kind"], fault.get("times", 1))
        for model, config in scenario.models.items():
            cloud.put_model_config(model, config)
        seen: set[str] = set()
        traffic: list[dict[str, Any]] = []
        for index, step in enumerate(scenario.steps, start=1):
            echo(f"step {index}/{len(scenario.steps)}: {step.describe()}")
            started = time.monotonic()
            try:
                run_step(cloud, step, scenario, traffic)
            except ValueError as exc:  # e.g. nothing pending approval: the scenario goes on, as a person would
                echo(f"  skipped: {exc}")
            cloud.wait_idle(timeout=STEP_TIMEOUT_SECONDS, on_tick=lambda: echo_running(cloud, echo))
            for execution in executions(cloud):
                if execution["arn"] not in seen:
                    seen.add(execution["arn"])
                    echo("  " + describe_execution(execution))
            echo(f"  done in {time.monotonic() - started:.1f}s")
        report = build_report(cloud, scenario.models, traffic)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    write_html(report, out_dir / "report.html", STATEMACHINES)
    return report


def run_step(cloud: LocalCloud, step: Step, scenario: Scenario, traffic: list[dict[str, Any]]) -> None:
    if step.kind == "upload":
        assert step.file is not None
        cloud.upload(step.model, step.file)
    elif step.kind == "traffic":
        assert step.file is not None
        traffic.append(send_traffic(cloud, step.model, step.file, scenario.models[step.model].get("target")))
    elif step.kind == "monitor":
        cloud.start_monitoring(step.model)
    elif step.kind == "approve":
        cloud.approve_latest(step.model)


def send_traffic(cloud: LocalCloud, model: str, path: Path, target: str | None) -> dict[str, Any]:
    """Send each row to the model's endpoint as a client would (one CSV row per request, no header)."""
    frame = read_table(path)
    if target in frame.columns:
        frame = frame.drop(columns=[target])
    runtime = cloud.client("sagemaker-runtime")
    errors = 0
    for line in frame.to_csv(header=False, index=False, lineterminator="\n").splitlines():
        try:
            runtime.invoke_endpoint(EndpointName=endpoint_name(model), ContentType="text/csv", Accept="text/csv",
                                    Body=line.encode())
        except ClientError:
            errors += 1
    return {"model": model, "rows": len(frame), "errors": errors}


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def echo_running(cloud: LocalCloud, echo: Print) -> None:
    """What is running now, and for how long: one line per execution still in flight."""
    sfn = cloud.client("stepfunctions")
    now = time.time()
    for machine, arn in cloud.resources.state_machines.items():
        for item in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
            history = sfn.get_execution_history(executionArn=item["executionArn"], reverseOrder=True, maxResults=20)
            state = next((e["stateEnteredEventDetails"]["name"] for e in history["events"]
                          if e["type"].endswith("StateEntered")), "starting")
            echo(f"  … {machine} {item['name']} at {state} ({now - item['startDate'].timestamp():.0f}s)")


def compact_path(states: list[str]) -> str:
    """States joined by arrows, with a loop that repeats shown once with its count (a polling loop)."""
    parts, i = [], 0
    while i < len(states):
        best_size, best_count = 1, 1
        for size in range(1, 9):
            block, count = states[i:i + size], 1
            while states[i + count * size:i + (count + 1) * size] == block:
                count += 1
            if count > 1 and size * count > best_size * best_count:
                best_size, best_count = size, count
        block = " → ".join(states[i:i + best_size])
        parts.append(f"({block}) ×{best_count}" if best_count > 1 else block)
        i += best_size * best_count
    return " → ".join(parts)


def describe_execution(execution: dict[str, Any]) -> str:
    path = compact_path(execution["states"])
    outcome = execution["status"]
    if execution["error"]:
        outcome += f" ({execution['error']})"
    return f"{execution['state_machine']} {execution['name']}: {outcome}\n    {path}"
