"""RecordDeploymentFunction: DeployPipeline's RecordDeployment, RecordRolledBack and RecordFailure states.

Input {outcome: "deployed" | "rolled_back", model, model_package_arn, run_id, execution, deploy?,
failure?}; returns {"outcome", "reason", "model", "model_package_arn", "run_id", "endpoint_name",
"endpoint_config", "schedule_name"} (DeployPipeline's output, which TrainingPipeline reads). Once
per execution and outcome: a retried invocation returns the first one's result."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from rollout import record_deployment
from selfheal_shared.handler import handler, logger
from selfheal_shared.serving_events import RecordDeploymentRequest


@handler(RecordDeploymentRequest)
def lambda_handler(event: RecordDeploymentRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(model=event.model, run_id=event.run_id, execution=event.execution)
    result = record_deployment(event, context)
    logger.info("deployment recorded", extra=result)
    return result
