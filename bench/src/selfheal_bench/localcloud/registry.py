"""Model Registry events: approving a package emits SageMaker's "Model Package State Change" event.

moto records UpdateModelPackage but emits nothing; on AWS the approval event is what starts Deploy
(through the template's own EventBridge rule), so the local cloud emits it the way SageMaker does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from moto.sagemaker.responses import SageMakerResponse

from .eventbridge import emit


def patch_moto_registry(region: str) -> Callable[[], None]:
    original = SageMakerResponse.update_model_package

    def update_model_package(self: SageMakerResponse) -> Any:
        result = original(self)
        arn = self._get_param("ModelPackageArn")
        package = boto3.client("sagemaker", region_name=region).describe_model_package(ModelPackageName=arn)
        detail = {key: package.get(key) for key in ("ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
                                                    "ModelPackageName", "ModelApprovalStatus",
                                                    "CustomerMetadataProperties")}
        detail["ModelPackageStatus"] = package.get("ModelPackageStatus", "Completed")
        emit("aws.sagemaker", "SageMaker Model Package State Change", {k: v for k, v in detail.items() if v},
             [arn])
        return result

    SageMakerResponse.update_model_package = update_model_package  # type: ignore[method-assign]

    def undo() -> None:
        SageMakerResponse.update_model_package = original  # type: ignore[method-assign]

    return undo
