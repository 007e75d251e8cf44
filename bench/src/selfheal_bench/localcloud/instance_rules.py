"""What SageMaker refuses for an instance type: a KMS key for the storage volume of an instance type
with local NVMe storage. botocore, ResourceConfig.VolumeKmsKeyId and ProcessingClusterConfig.VolumeKmsKeyId:
"Certain Nitro-based instances include local storage ... You can't request a VolumeKmsKeyId when using an
instance type with local storage". Which types: the SageMaker Python SDK's rule (aws/sagemaker-python-sdk,
src/sagemaker/utils.py, volume_size_supported / instance_supports_kms): a "d" in the instance family
(c5d, m5d, r5d, g4dn, p3dn, p4d, ...) or the g5 family. For endpoint configs botocore says only that the
key does not encrypt local storage; the SDK refuses it there too, and so, stricter, does the local cloud.
"""

from __future__ import annotations

from typing import Any


def has_local_storage(instance_type: str) -> bool:
    family = instance_type.split(".")[1]
    return "d" in family or family.startswith("g5")


def _volumes(operation: str, request: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(instance type, volume KMS key) of each compute resource a request asks for."""
    if operation == "CreateTrainingJob":
        config = request.get("ResourceConfig", {})
        return [(config.get("InstanceType", ""), config.get("VolumeKmsKeyId"))]
    if operation == "CreateProcessingJob":
        config = request.get("ProcessingResources", {}).get("ClusterConfig", {})
        return [(config.get("InstanceType", ""), config.get("VolumeKmsKeyId"))]
    if operation == "CreateEndpointConfig":
        return [(v["InstanceType"], request.get("KmsKeyId")) for v in request.get("ProductionVariants", [])
                if "InstanceType" in v]
    return []


def volume_key_refusal(operation: str, request: dict[str, Any]) -> str | None:
    """SageMaker's refusal of a request asking a volume key for a type with local storage, or None."""
    for instance_type, key in _volumes(operation, request):
        if key and instance_type.startswith("ml.") and has_local_storage(instance_type):
            return (f"{operation}: {instance_type} has local NVMe storage, encrypted by the instance; a volume KMS "
                    "key cannot be requested for it.")
    return None
