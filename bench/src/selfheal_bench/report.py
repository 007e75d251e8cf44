"""report.json: what a scenario or the demo did, read back from the ledger and the executions.

The shape is a contract (DESIGN.md): fields may be added, never renamed or dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError
from selfheal_shared import ledger
from selfheal_shared.ledger_items import ENDPOINT, MONITOR, QUARANTINE, RUN
from selfheal_shared.serving import endpoint_name as endpoint_name  # re-exported: reliability.py imports it from here

from .localcloud import LocalCloud


def _table(cloud: LocalCloud) -> Any:
    return cloud.resource("dynamodb").Table(cloud.ledger_table)


def ledger_items(cloud: LocalCloud, model: str, kind: str) -> list[Any]:
    """The model's ledger items whose sort key starts with `kind` (selfheal_shared.ledger_items), as plain values."""
    return list(ledger.query(_table(cloud), model, kind))


def ledger_kind(cloud: LocalCloud, kind: str) -> list[Any]:
    """Every ledger item whose sort key starts with `kind`, whatever model partition it is in
    (IngestFunction files uploads for unknown or invalid model folders too), oldest first."""
    return sorted(ledger.scan(_table(cloud), kind), key=lambda item: item["sk"])


def quarantined(cloud: LocalCloud) -> list[dict[str, Any]]:
    """Every quarantined upload, known model or not, with its reason."""
    return [{"model": item["model"], "key": item["key"], "reason": item["reason"], "check": item.get("check"),
             "quarantine_key": item.get("quarantine_key")}
            for item in ledger_kind(cloud, QUARANTINE)]


def executions(cloud: LocalCloud, known: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Every execution of every state machine but the `known` ones (by ARN), oldest first, with the states it
    entered in order (reading a history costs: a caller that looks again and again skips what it has seen)."""
    sfn = cloud.client("stepfunctions")
    found = []
    for logical_id, arn in cloud.resources.state_machines.items():
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            for item in page["executions"]:
                if item["executionArn"] in known:
                    continue
                described = sfn.describe_execution(executionArn=item["executionArn"])
                found.append({
                    "state_machine": logical_id,
                    "name": item["name"],
                    "arn": item["executionArn"],
                    "status": described["status"],
                    "input": json.loads(described.get("input") or "{}"),
                    "output": json.loads(described["output"]) if described.get("output") else None,
                    "error": described.get("error"),
                    "cause": described.get("cause"),
                    "started": described["startDate"].timestamp(),
                    "stopped": described["stopDate"].timestamp() if described.get("stopDate") else None,
                    "steps": state_steps(sfn, item["executionArn"]),
                })
                found[-1]["states"] = [step["name"] for step in found[-1]["steps"]]
    return sorted(found, key=lambda e: e["started"])


def state_steps(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """Each state the execution entered, in order, with its input, output, timing and outcome."""
    steps: list[dict[str, Any]] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        for event in page["events"]:
            kind, at = event["type"], event["timestamp"].timestamp()
            if kind.endswith("StateEntered"):
                details = event["stateEnteredEventDetails"]
                steps.append({"name": details["name"], "type": kind.removesuffix("StateEntered"),
                              "entered": at, "exited": None, "input": _json(details.get("input")),
                              "output": None, "status": "running", "errors": []})
            elif kind.endswith("StateExited") and steps:
                steps[-1] |= {"exited": at, "output": _json(event["stateExitedEventDetails"].get("output")),
                              "status": "succeeded"}
            elif kind.endswith(("Failed", "TimedOut")) and steps and not kind.startswith("Execution"):
                details = next((v for k, v in event.items() if k.endswith("EventDetails")), {})
                steps[-1]["errors"].append({"event": kind, "error": details.get("error"),
                                            "cause": details.get("cause")})
    for step in steps:
        if step["status"] == "running" and (step["errors"] or step["type"] == "Fail"):
            step["status"] = "failed"
    return steps


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_report(cloud: LocalCloud, models: Iterable[str],
                 traffic: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    models = list(models)
    runs_by_id = {item["run_id"]: item for model in models for item in ledger_items(cloud, model, RUN)}
    runs = []
    all_executions = executions(cloud)
    for execution in all_executions:
        if execution["state_machine"] != "TrainingPipeline":
            continue
        recorded = runs_by_id.get(execution["name"], {})
        status = execution["status"]
        gate = recorded.get("gate") or {}
        runs.append({
            "run_id": execution["name"],
            "model": recorded.get("model") or execution["input"].get("model"),
            "trigger": recorded.get("trigger") or execution["input"].get("trigger"),
            "status": status,
            "decision": recorded.get("decision") or ("failed" if status != "SUCCEEDED" else "registered"),
            "metrics": recorded.get("metrics") or {},
            "champion_metrics": recorded.get("champion_metrics"),
            "gate": {"passed": bool(gate.get("passed", False)), "reasons": list(gate.get("reasons", []))},
            "model_package_arn": recorded.get("model_package_arn"),
            "states": execution["states"],
            "error": execution["error"],
            "cause": execution["cause"],
            "datasets": recorded.get("datasets", []),
            "seconds": round((execution["stopped"] or execution["started"]) - execution["started"], 1),
        })
    return {"runs": runs, "quarantined": quarantined(cloud), "endpoints": endpoints(cloud, models),
            "executions": all_executions,
            "jobs": [{"name": job.name, "kind": job.kind, "instance_count": job.instance_count, "status": job.status,
                      "seconds": round(job.compute_seconds, 3), "failure_reason": job.failure_reason,
                      "hosts": [host.as_dict() for host in job.hosts]}
                     for job in cloud.jobs.jobs.values()],
            "monitoring": monitoring(cloud, models), "traffic": traffic or [],
            "dead_letters": [{"target": dead["target"], "error": dead["error"]} for dead in cloud.dead_letters]}


ONE_LINE_CHARS = 300
_ENDED_BADLY = {"FAILED", "TIMED_OUT", "ABORTED"}


def one_line(text: str, limit: int = ONE_LINE_CHARS) -> str:
    """A message on one line, cut at `limit` characters: what a terminal line can carry."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def failure_of(execution: dict[str, Any]) -> str | None:
    """Where and why an execution failed, in a line: the state, the job and its FailureReason, or the
    function's error; None when it did not fail."""
    if execution["status"] not in _ENDED_BADLY:
        return None
    failed = [step for step in execution.get("steps", []) if step["errors"]]
    if not failed:
        cause = execution.get("cause")
        return f"({execution['error']}: {one_line(cause)})" if cause else f"({execution['error']})"
    step, error = failed[-1], failed[-1]["errors"][-1]
    return f"at {step['name']}: {_reason(error['error'], error['cause'])}"


def _reason(error: str | None, cause: str | None) -> str:
    document = _json(cause)
    if isinstance(document, dict):
        job = next(((key.removesuffix("JobName"), value) for key, value in document.items()
                    if key.endswith("JobName") and key != "HyperParameterTuningJobName"), None)
        if job and document.get("FailureReason"):
            return one_line(f"{job[0].lower()} job {job[1]}: {document['FailureReason']}")
        if "errorType" in document:
            return one_line(f"{document['errorType']}: {document.get('errorMessage', '')}")
    return one_line(f"{error}: {cause}" if cause else str(error))


def problems(report: dict[str, Any]) -> list[str]:
    """What did not go as the scenario asked, one line each (empty when everything did)."""
    found = [f"{e['state_machine']} {e['name']} {e['status']} {failure_of(e)}"
             for e in report["executions"] if e["status"] in _ENDED_BADLY]
    found += [f"upload {q['key']} quarantined: {one_line(q['reason'])}" for q in report["quarantined"]]
    found += [f"traffic {t['model']} {t.get('file', '')}: {t['errors']} of {t['rows']} requests failed, "
              f"first error: {one_line(t.get('first_error') or '')}" for t in report["traffic"] if t["errors"]]
    found += [f"monitor {m['model']}: {m['status']}: {one_line(m.get('reason') or '')}"
              for m in report["monitoring"] if m["status"] == "Failed"]
    found += [f"{d['target'].rsplit(':', 1)[-1]} failed on every attempt: {one_line(d['error'])}"
              for d in report.get("dead_letters", [])]
    return found


def endpoints(cloud: LocalCloud, models: list[str]) -> dict[str, Any]:
    found = {}
    for model in models:
        (item,) = ledger_items(cloud, model, ENDPOINT) or [None]
        if item is None:
            continue
        sagemaker = cloud.client("sagemaker")
        try:
            described = sagemaker.describe_endpoint(EndpointName=item["endpoint_name"])
        except ClientError:
            described = {"EndpointStatus": "Deleted"}
        found[model] = {
            "endpoint_name": item["endpoint_name"],
            "status": described["EndpointStatus"],
            "model_package_arn": item.get("model_package_arn"),
            "model": served_container(sagemaker, described.get("EndpointConfigName")),
            "history": [{"model_package_arn": h.get("model_package_arn"), "outcome": h.get("outcome"),
                         "run_id": h.get("run_id"), "reason": h.get("reason"), "at": h.get("at")}
                        for h in item.get("history", [])],
        }
    return found


def served_container(sagemaker: Any, config_name: str | None) -> dict[str, Any] | None:
    """The model container an endpoint config serves, as SageMaker describes it: a model made from a model
    package runs the package's container, with the model's environment over the package's."""
    if config_name is None:
        return None
    (variant, *_) = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container = model.get("PrimaryContainer") or model["Containers"][0]
    served = container
    if "ModelPackageName" in container:
        package = sagemaker.describe_model_package(ModelPackageName=container["ModelPackageName"])
        served = package["InferenceSpecification"]["Containers"][0]
    return {"image": served.get("Image"), "model_data_url": served.get("ModelDataUrl"),
            "environment": served.get("Environment", {}) | container.get("Environment", {}),
            "network_isolation": bool(model.get("EnableNetworkIsolation", False))}


def monitoring(cloud: LocalCloud, models: list[str]) -> list[dict[str, Any]]:
    """One entry per analysis of each monitoring execution: its drift analysis (kind data) and its
    model-quality analysis (kind model_quality), each with the execution's decision."""
    found = []
    for model in models:
        for item in ledger_items(cloud, model, MONITOR):
            decided = {"model": model, "execution": item.get("execution"), "action": item.get("action"),
                       "reason": item.get("reason"), "run_id": item.get("run_id")}
            quality = item.get("quality")
            if not quality or item.get("rows") is not None or item.get("violations"):
                found.append(decided | _data_entry(item))
            if quality:
                found.append(decided | _quality_entry(item, quality))
    return found


def _data_entry(item: dict[str, Any]) -> dict[str, Any]:
    violations = [{"feature_name": v.get("feature_name"), "constraint_check_type": v.get("constraint_check_type")}
                  for v in item.get("violations", [])]
    status = item.get("status") if item.get("status") == "Failed" or not item.get("quality") else (
        "CompletedWithViolations" if violations else "Completed")
    return {"kind": "data", "status": status, "violations": violations, "metrics": {}, "estimated": {},
            "labels": {}, "drift": item.get("drift", {}), "threshold": item.get("threshold"), "rows": item.get("rows")}


def _quality_entry(item: dict[str, Any], quality: dict[str, Any]) -> dict[str, Any]:
    violations = [{"feature_name": v.get("metric_name"), "metric_name": v.get("metric_name"),
                   "constraint_check_type": v.get("constraint_check_type")} for v in quality.get("violations", [])]
    return {"kind": "model_quality", "status": "CompletedWithViolations" if violations else "Completed",
            "violations": violations, "metric": quality.get("metric"), "threshold": quality.get("threshold"),
            "metrics": quality.get("metrics") or {}, "estimated": quality.get("estimated") or {},
            "labels": quality.get("labels") or {}, "estimation": quality.get("estimation"),
            "at": item.get("at")}
