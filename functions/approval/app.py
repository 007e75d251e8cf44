"""ApprovalFunction: EventBridge "SageMaker Model Package State Change" (Approved, selfheal-* groups)
-> DeployPipeline for packages of models approved by hand.

Returns {"model", "model_package_arn", "started", "execution_arn", "reason"}; events it does not act
on (auto-approved models, packages no longer approved) return started false with the reason. A
malformed event raises pydantic's ValidationError (EventBridge retries, then the rule's DLQ keeps it)."""

from __future__ import annotations

from typing import Any

from approvals import handle_approval
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from selfheal_shared.handler import handler, logger
from selfheal_shared.serving_events import ModelPackageStateChangeEvent


@handler(ModelPackageStateChangeEvent, correlation_id_path=correlation_paths.EVENT_BRIDGE)
def lambda_handler(event: ModelPackageStateChangeEvent, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(model_package_arn=event.detail.model_package_arn)
    result = handle_approval(event)
    logger.info("approval handled", extra=result)
    return result
