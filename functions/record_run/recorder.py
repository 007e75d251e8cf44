"""RecordRun: the end of every TrainingPipeline execution, whatever its outcome.

Records the outcome in the run's ledger item, releases the model's lock, notifies, and then starts
the next run if uploads arrived while this one was in flight (the trigger policy decides). The CHAMPION
is the model that serves: DeployPipeline's RecordDeployment sets it when a rollout succeeds, so a package
that was registered but never served (pending approval, or rolled back) never becomes the champion."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from selfheal_shared import ledger, notify
from selfheal_shared.events import RecordRunRequest
from selfheal_shared.idempotency import run_once
from selfheal_shared.runs import maybe_start_run

metrics = Metrics()

OUTCOME_METRIC = {"deployed": "RunsSucceeded", "registered": "RunsSucceeded", "rejected": "RunsRejected",
                  "failed": "RunsFailed"}


def record_run(request: RecordRunRequest, context: LambdaContext | None = None) -> dict[str, Any]:
    # Recording and notifying happen once per outcome; a retried invocation replays the result.
    outcome = run_once("record-run", record_outcome, request, key="[run_id, status, decision]", context=context)
    next_run = maybe_start_run(request.model, "upload", f"after:{request.run_id}")
    return {**outcome, "next_run": next_run.as_dict()}


def record_outcome(request: RecordRunRequest) -> dict[str, Any]:
    fields: dict[str, Any] = {"status": request.status, "decision": request.decision, "ended_at": ledger.timestamp(),
                              "jobs": request.jobs.model_dump(), "model_package_arn": request.model_package_arn}
    if request.gate is not None:
        fields |= {"gate": {"passed": request.gate.passed, "reasons": request.gate.reasons},
                   "metrics": request.gate.metrics, "champion_metrics": request.gate.champion_metrics}
    if request.error is not None:
        fields |= {"error": request.error.error, "cause": request.error.cause}
    run = ledger.update_run(request.model, request.run_id, **fields)
    lock_released = ledger.release_lock(request.model, request.run_id)
    outcome = {"run_id": request.run_id, "model": request.model, "status": request.status,
               "decision": request.decision, "model_package_arn": request.model_package_arn,
               "lock_released": lock_released}
    notify.publish(
        f"selfheal {request.model}: run {request.decision} ({request.run_id})",
        {**outcome, "gate": run.get("gate"), "metrics": run.get("metrics"), "error": run.get("error"),
         "cause": run.get("cause"), "trigger": run.get("trigger"), "started_at": run.get("started_at"),
         "ended_at": run["ended_at"], "execution_arn": run.get("execution_arn")},
        event="run.finished",
    )
    metrics.add_metric(name=OUTCOME_METRIC[request.decision], unit=MetricUnit.Count, value=1)
    return outcome
