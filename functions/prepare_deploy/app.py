"""PrepareDeployFunction: DeployPipeline's PrepareDeploy state.

Input {model, model_package_arn, run_id, execution}; returns the Deployment the pipeline works from
($.deploy, see selfheal_shared.serving_events.Deployment). Raises PackageNotApproved,
EndpointBusy (the ASL retries it) or EndpointUnusable."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from deploy_plan import prepare_deploy
from selfheal_shared.handler import handler, logger
from selfheal_shared.serving_events import DeployRequest


@handler(DeployRequest)
def lambda_handler(event: DeployRequest, context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(model=event.model, run_id=event.run_id, execution=event.execution)
    deployment = prepare_deploy(event)
    logger.info("deployment prepared", extra=deployment)
    return deployment
