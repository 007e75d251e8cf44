"""SmokeTestFunction: DeployPipeline's SmokeTest state.

Input {endpoint_name, test_uri, target, problem, max_rows?}; returns {"endpoint_name", "rows",
"passed": true}. Raises SmokeTestFailed (the ASL rolls back) or HeldOutRowsNotFound."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from selfheal_shared.handler import handler, logger
from selfheal_shared.serving_events import SmokeTestRequest
from smoke import smoke_test


@handler(SmokeTestRequest)
def lambda_handler(event: SmokeTestRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(endpoint_name=event.endpoint_name)
    result = smoke_test(event)
    logger.info("smoke test passed", extra=result)
    return result
