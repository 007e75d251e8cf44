"""RecordRunFunction: TrainingPipeline's RecordRegistered / RecordRejected / RecordFailure states.

Input {run_id, model, status, decision, gate?, model_package_arn?, jobs, error?}; returns
{"run_id", "model", "status", "decision", "model_package_arn", "lock_released",
"next_run": {started, run_id, reason, ...}}."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from recorder import record_run
from selfheal_shared.events import RecordRunRequest
from selfheal_shared.handler import handler, logger


@handler(RecordRunRequest)
def lambda_handler(event: RecordRunRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.run_id, model=event.model)
    result = record_run(event, context)
    logger.info("run recorded", extra=result)
    return result
