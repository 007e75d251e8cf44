"""Run a scenario on the local cloud: each step until everything it triggered has finished.

Each step prints what a person acts on: the upload accepted or quarantined (with the reason), the
traffic's error count and first error, each execution with the path it took (a failed one with the
state, job and reason it failed on). report.json's "problems" lists what did not go as the scenario
asked; the command line exits 1 when it is not empty.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError
from selfheal_shared.ledger_items import DATASET, QUARANTINE
from selfheal_shared.serving import endpoint_name

from .html_report import write_html
from .localcloud import LocalCloud
from .localcloud.cloud import IdleTimeout
from .report import build_report, executions, failure_of, ledger_kind, one_line, problems
from .scenario import INFERENCE_ID, Scenario, Step

Print = Callable[[str], None]
STEP_TIMEOUT_SECONDS = 900


def run_scenario(scenario: Scenario, out_dir: Path, echo: Print = print,
                 cloud_factory: Callable[[Path], LocalCloud] = LocalCloud) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    timeouts: list[str] = []
    with cloud_factory(out_dir / "cloud") as cloud:
        for fault in scenario.faults:
            cloud.faults.add(fault["target"], fault["kind"], fault.get("times", 1))
        for model, config in scenario.models.items():
            cloud.put_model_config(model, config)
        seen = Seen()
        traffic: list[dict[str, Any]] = []
        for index, step in enumerate(scenario.steps, start=1):
            echo(f"step {index}/{len(scenario.steps)}: {step.describe()}")
            started = time.monotonic()
            try:
                run_step(cloud, step, scenario, traffic, echo)
            except ValueError as exc:  # e.g. nothing pending approval: the scenario goes on, as a person would
                echo(f"  skipped: {exc}")
            try:
                cloud.wait_idle(timeout=STEP_TIMEOUT_SECONDS, on_tick=lambda: echo_running(cloud, echo))
            except IdleTimeout as exc:
                timeouts.append(f"step {index} ({step.describe()}): {exc}")
                echo(f"  gave up waiting: {exc}")
                break
            for line in seen.new_lines(cloud):
                echo("  " + line)
            echo(f"  done in {time.monotonic() - started:.1f}s")
        report = build_report(cloud, scenario.models, traffic)
    report["problems"] = problems(report) + timeouts
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    write_html(report, out_dir / "report.html", cloud.root / "statemachines")
    return report


def run_step(cloud: LocalCloud, step: Step, scenario: Scenario, traffic: list[dict[str, Any]], echo: Print) -> None:
    if step.kind == "upload":
        assert step.file is not None
        cloud.upload(step.model, step.file)
    elif step.kind == "traffic":
        assert step.file is not None
        sent = send_traffic(cloud, step.model, step.file, scenario.models[step.model].get("target"))
        traffic.append(sent)
        echo("  " + describe_traffic(sent))
    elif step.kind == "monitor":
        cloud.start_monitoring(step.model)
    elif step.kind == "approve":
        cloud.approve_latest(step.model)
    elif step.kind == "labels":
        assert step.file is not None
        key, count = send_labels(cloud, step.model, step.file, str(scenario.models[step.model].get("target")))
        echo(f"  labels {step.model}: {count} written to {key}")


class Seen:
    """What the cloud recorded since the last look: uploads judged, executions, dead letters."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._dead_letters = 0

    def new_lines(self, cloud: LocalCloud) -> Iterator[str]:
        for item in ledger_kind(cloud, DATASET) + ledger_kind(cloud, QUARANTINE):
            if self._first(item["pk"] + item["sk"]):
                yield describe_upload(item)
        for execution in executions(cloud, known=frozenset(self._keys)):
            if self._first(execution["arn"]):
                yield describe_execution(execution)
        for dead in cloud.dead_letters[self._dead_letters:]:
            yield f"{dead['target'].rsplit(':', 1)[-1]} failed on every attempt: {one_line(dead['error'])}"
        self._dead_letters = len(cloud.dead_letters)

    def _first(self, key: str) -> bool:
        new = key not in self._keys
        self._keys.add(key)
        return new


def describe_upload(item: dict[str, Any]) -> str:
    if item["sk"].startswith(QUARANTINE):
        return f"quarantined {item['key']}: {one_line(item['reason'])}"
    return f"accepted {item['key']}: {item['rows']} rows, {item['columns']} columns"


def send_traffic(cloud: LocalCloud, model: str, path: Path, target: str | None) -> dict[str, Any]:
    """Send each row to the model's endpoint as a client would: one CSV record per request, no header; an
    inference_id column names each request (InvokeEndpoint's InferenceId), never a feature."""
    frame = read_table(path)
    if target in frame.columns:
        frame = frame.drop(columns=[target])
    ids = frame.pop(INFERENCE_ID).astype(str).tolist() if INFERENCE_ID in frame.columns else [None] * len(frame)
    runtime = cloud.client("sagemaker-runtime")
    errors, first_error = 0, None
    for body, inference_id in zip(request_bodies(frame), ids, strict=True):
        try:
            runtime.invoke_endpoint(EndpointName=endpoint_name(model), ContentType="text/csv", Accept="text/csv",
                                    Body=body, **({"InferenceId": inference_id} if inference_id else {}))
        except ClientError as error:
            errors += 1
            first_error = first_error or str(error)
    return {"model": model, "file": path.name, "rows": len(frame), "errors": errors, "first_error": first_error}


def send_labels(cloud: LocalCloud, model: str, path: Path, target: str) -> tuple[str, int]:
    """Write a labels file to ground-truth/<model>/ in SageMaker's ground-truth format, as a labelling
    process would: one record per request id, the label as CSV text."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    records = [{"groundTruthData": {"data": label, "encoding": "CSV"}, "eventMetadata": {"eventId": inference_id},
                "eventVersion": "0"} for inference_id, label in zip(frame[INFERENCE_ID], frame[target], strict=True)]
    return cloud.put_ground_truth(model, records), len(records)


def request_bodies(frame: pd.DataFrame) -> Iterator[bytes]:
    """Each row as one CSV record: cells as pandas writes them, quoted where a comma, quote or newline
    needs it, so a field holding a newline stays in its row's request."""
    text = frame.to_csv(header=False, index=False, lineterminator="\n")
    for record in csv.reader(io.StringIO(text)):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(record)
        yield buffer.getvalue()[:-1].encode()


def describe_traffic(sent: dict[str, Any]) -> str:
    line = f"traffic {sent['model']}: {sent['rows']} rows, {sent['errors']} errors"
    return line + (f", first error: {one_line(sent['first_error'])}" if sent.get("first_error") else "")


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
    failure = failure_of(execution)
    outcome = execution["status"] + (f" {failure}" if failure else "")
    return f"{execution['state_machine']} {execution['name']}: {outcome}\n    {compact_path(execution['states'])}"
