"""Approval: a model package approved by hand in the Model Registry starts DeployPipeline.

TrainingPipeline deploys packages of models whose approval mode is auto itself, so their events
(SageMaker sends them on creation too) are ignored here, as are packages no selfheal run registered.
The package is described again because events may arrive late or out of order: only a package still
Approved deploys. The execution name comes from the package ARN (serving.deploy_execution_name, the
formula TrainingPipeline uses too), so a duplicate event starts nothing new."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from selfheal_shared import aws, ledger
from selfheal_shared.config import read_model_config
from selfheal_shared.errors import ConfigError, ConfigNotFound, InvalidName
from selfheal_shared.names import check_model_name, check_run_id
from selfheal_shared.serving import deploy_execution_name, get_serving_settings
from selfheal_shared.serving_events import ModelPackageStateChangeEvent

metrics = Metrics()

GROUP_PREFIX = "selfheal-"


def handle_approval(event: ModelPackageStateChangeEvent) -> dict[str, Any]:
    detail = event.detail
    result = {"model": None, "model_package_arn": detail.model_package_arn, "started": False,
              "execution_arn": None}
    try:
        model = check_model_name(detail.model_package_group_name.removeprefix(GROUP_PREFIX))
        mode = read_model_config(model).approval
    except (InvalidName, ConfigNotFound, ConfigError) as error:
        return {**result, "reason": f"ignored: {error}"}
    result["model"] = model
    if mode == "auto":
        return {**result, "reason": "ignored: TrainingPipeline deploys the packages of auto-approved models"}
    package = aws.client("sagemaker").describe_model_package(ModelPackageName=detail.model_package_arn)
    if package["ModelApprovalStatus"] != "Approved":
        return {**result, "reason": f"ignored: the package is {package['ModelApprovalStatus']} now"}
    run_id = run_of(model, package)
    if run_id is None:
        return {**result, "reason": "ignored: no selfheal run registered this package"}
    return {**result, **start_deploy(model, detail.model_package_arn, run_id)}


def run_of(model: str, package: dict[str, Any]) -> str | None:
    """The run that registered the package: its lineage (CustomerMetadataProperties.run_id, which
    RegisterModelFunction writes), else the ledger's RUN item that names the package (metadata can be
    edited away in the registry)."""
    run_id = (package.get("CustomerMetadataProperties") or {}).get("run_id")
    if run_id is None:
        arn = package["ModelPackageArn"]
        run_id = next((run["run_id"] for run in ledger.list_runs(model) if run.get("model_package_arn") == arn), None)
    try:
        return check_run_id(run_id) if run_id is not None else None
    except InvalidName:
        return None


def start_deploy(model: str, model_package_arn: str, run_id: str) -> dict[str, Any]:
    pipeline = get_serving_settings().deploy_pipeline_arn
    name = deploy_execution_name(model_package_arn)
    execution_arn = f"{pipeline.replace(':stateMachine:', ':execution:')}:{name}"
    try:
        aws.client("stepfunctions").start_execution(
            stateMachineArn=pipeline, name=name,
            input=json.dumps({"model": model, "model_package_arn": model_package_arn, "run_id": run_id}))
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        return {"started": True, "execution_arn": execution_arn, "reason": "already started for this package"}
    metrics.add_metric(name="ApprovedDeploymentsStarted", unit=MetricUnit.Count, value=1)
    return {"started": True, "execution_arn": execution_arn, "reason": "approved by hand: deploying"}
