"""RegisterModelFunction: TrainingPipeline's Register state.

Input {run_id, model, approval, model_data_url, evaluation_uri, code_uri, training_job_name};
returns {"model_package_arn", "model_package_group", "approval_status"}. Once per run_id: a retried
invocation returns the package the first one created."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from registry import register_model
from selfheal_shared.events import RegisterRequest
from selfheal_shared.handler import handler, logger
from selfheal_shared.idempotency import run_once


@handler(RegisterRequest)
def lambda_handler(event: RegisterRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.run_id, model=event.model)
    result = run_once("register-model", register_model, event, key="run_id", context=context)
    logger.info("model registered", extra=result)
    return result
