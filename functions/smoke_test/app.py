"""SmokeTestFunction: DeployPipeline's SmokeTest state.

Input {endpoint_name, test_uri, target, problem, max_rows?}; returns {"endpoint_name", "rows",
"passed": true}. Raises SmokeTestFailed (the ASL rolls back) or HeldOutRowsNotFound."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from selfheal_shared.errors import throttling_as_retryable
from selfheal_shared.serving_events import SmokeTestRequest
from smoke import smoke_test

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_parser(model=SmokeTestRequest)
@throttling_as_retryable
def lambda_handler(event: SmokeTestRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(endpoint_name=event.endpoint_name)
    result = smoke_test(event)
    logger.info("smoke test passed", extra=result)
    return result
