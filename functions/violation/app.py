"""ViolationFunction: MonitorPipeline's Decide, RecordNoData and RecordFailure states.

Input {model, execution, window?, error?}; returns {"model", "execution", "status", "action": "retrain" |
"alert" | "none" | "wait_for_labels", "reason", "violations", "drift", "rows", "run_id", "suppressed",
"quality"}. Once per execution: a retried invocation returns the first decision."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from drift_policy import judge
from selfheal_shared.errors import throttling_as_retryable
from selfheal_shared.serving_events import ViolationRequest

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=ViolationRequest)
@throttling_as_retryable
def lambda_handler(event: ViolationRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(model=event.model, execution=event.execution)
    result = judge(event, context)
    logger.info("monitoring decided", extra=result)
    return result
