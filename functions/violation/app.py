"""ViolationFunction: MonitorPipeline's Decide, RecordNoData and RecordFailure states.

Input {model, execution, window?, error?}; returns {"model", "execution", "status", "action": "retrain" |
"alert" | "none" | "wait_for_labels", "reason", "violations", "drift", "rows", "run_id", "suppressed",
"quality"}. Once per execution: a retried invocation returns the first decision."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from drift_policy import judge
from selfheal_shared.handler import handler, logger
from selfheal_shared.serving_events import ViolationRequest


@handler(ViolationRequest)
def lambda_handler(event: ViolationRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(model=event.model, execution=event.execution)
    result = judge(event, context)
    logger.info("monitoring decided", extra=result)
    return result
