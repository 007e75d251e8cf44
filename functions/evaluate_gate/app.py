"""EvaluateGateFunction: TrainingPipeline's Gate state.

Input {run_id, model, metric: {name, threshold, min_improvement}, evaluation_uri}; returns
{"passed", "reasons", "metrics", "champion_metrics"}. Raises EvaluationNotFound or
InvalidEvaluation when evaluation.json is absent or unreadable: the Gate state's Catch (States.ALL) records the run
as failed with that name and its message as the cause."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from gate import evaluate_gate
from selfheal_shared.events import GateRequest
from selfheal_shared.handler import handler, logger, metrics


@handler(GateRequest)
def lambda_handler(event: GateRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.run_id, model=event.model)
    result = evaluate_gate(event)
    logger.info("gate decided", extra=result)
    metrics.add_metric(name="GatePassed" if result["passed"] else "GateRejected", unit=MetricUnit.Count, value=1)
    return result
