"""Register the challenger as a model package in the model's group, selfheal-<model>, with its
metrics (evaluation.json as ModelQuality statistics) and lineage (run, code, training job)."""

from __future__ import annotations

import hashlib
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from selfheal_shared import aws
from selfheal_shared.config import read_model_config
from selfheal_shared.events import RegisterRequest
from selfheal_shared.settings import get_settings

metrics = Metrics()

CONTENT_TYPES = ["text/csv", "application/json"]
# Where the package may serve; the configured deploy instance type is added to these.
REALTIME_INSTANCE_TYPES = ["ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge"]
APPROVAL_STATUS = {"auto": "Approved", "manual": "PendingManualApproval"}
# The serving container runs network-isolated (DeployPipeline's CreateModel), so it cannot download code: the
# inference code is inside model.tar.gz under code/ (ml/train.py), and the script-mode toolkit is pointed there,
# as the SageMaker Python SDK does under network isolation (model.py, _script_mode_env_vars).
SERVING_ENVIRONMENT = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}


def package_group_name(model: str) -> str:
    return f"selfheal-{model}"


def register_model(request: RegisterRequest) -> dict[str, Any]:
    group = package_group_name(request.model)
    ensure_package_group(group, request.model)
    deploy_instance = read_model_config(request.model).deploy.instance_type
    arn = aws.client("sagemaker").create_model_package(**model_package_request(request, group, deploy_instance))[
        "ModelPackageArn"
    ]
    metrics.add_metric(name="ModelsRegistered", unit=MetricUnit.Count, value=1)
    return {"model_package_arn": arn, "model_package_group": group,
            "approval_status": APPROVAL_STATUS[request.approval]}


def ensure_package_group(group: str, model: str) -> None:
    sagemaker = aws.client("sagemaker")
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return
    except ClientError as error:
        if not _says(error, "does not exist"):
            raise
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group,
            ModelPackageGroupDescription=f"selfheal model {model}: every model that passed the gate",
        )
    except ClientError as error:
        if not _says(error, "already exists"):  # created concurrently: fine
            raise


def model_package_request(request: RegisterRequest, group: str, deploy_instance: str) -> dict[str, Any]:
    """CreateModelPackage parameters (the shape is checked against botocore's model in the tests)."""
    settings = get_settings()
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"run {request.run_id} (training job {request.training_job_name})",
        "InferenceSpecification": {
            "Containers": [{
                "Image": settings.xgboost_image_uri,
                "ModelDataUrl": request.model_data_url,
                "Environment": SERVING_ENVIRONMENT,
            }],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": CONTENT_TYPES,
            "SupportedRealtimeInferenceInstanceTypes": sorted({*REALTIME_INSTANCE_TYPES, deploy_instance}),
        },
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": request.evaluation_uri}},
        },
        "ModelApprovalStatus": APPROVAL_STATUS[request.approval],
        "CustomerMetadataProperties": {
            "run_id": request.run_id,
            "code_uri": request.code_uri,
            "training_job": request.training_job_name,
        },
        # SageMaker's own idempotency token: a retry after a lost response creates no second version.
        "ClientToken": hashlib.sha256(request.run_id.encode()).hexdigest()[:32],
    }


def _says(error: ClientError, phrase: str) -> bool:
    return phrase in error.response["Error"].get("Message", "")
