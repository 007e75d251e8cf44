"""Run a scenario on the local cloud: each step until everything it triggered has finished."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .localcloud import LocalCloud
from .report import build_report, executions
from .scenario import Scenario, Step

Print = Callable[[str], None]
STEP_TIMEOUT_SECONDS = 900


def run_scenario(scenario: Scenario, out_dir: Path, echo: Print = print,
                 cloud_factory: Callable[[Path], LocalCloud] = LocalCloud) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    with cloud_factory(out_dir / "cloud") as cloud:
        for fault in scenario.faults:
            cloud.faults.add(fault["target"], fault["kind"], fault.get("times", 1))
        for model, config in scenario.models.items():
            cloud.put_model_config(model, config)
        seen: set[str] = set()
        for index, step in enumerate(scenario.steps, start=1):
            echo(f"step {index}/{len(scenario.steps)}: {step.describe()}")
            started = time.monotonic()
            run_step(cloud, step)
            cloud.wait_idle(timeout=STEP_TIMEOUT_SECONDS)
            for execution in executions(cloud):
                if execution["arn"] not in seen:
                    seen.add(execution["arn"])
                    echo("  " + describe_execution(execution))
            echo(f"  done in {time.monotonic() - started:.1f}s")
        report = build_report(cloud, scenario.models)
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    return report


def run_step(cloud: LocalCloud, step: Step) -> None:
    if step.kind == "upload":
        assert step.file is not None
        cloud.upload(step.model, step.file)
        return
    raise NotImplementedError(f"step kind '{step.kind}' needs the endpoint and monitor (issue 3)")


def describe_execution(execution: dict[str, Any]) -> str:
    path = " → ".join(execution["states"])
    outcome = execution["status"]
    if execution["error"]:
        outcome += f" ({execution['error']})"
    return f"{execution['state_machine']} {execution['name']}: {outcome}\n    {path}"
