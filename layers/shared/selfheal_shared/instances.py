"""The compute a SageMaker job runs on, as its request gives it (ResourceConfig, ProcessingClusterConfig).

Every job's volume is encrypted with the project's key, except on instance types with local NVMe storage:
SageMaker refuses a VolumeKmsKeyId for those ("You can't request a VolumeKmsKeyId when using an instance
type with local storage", botocore ResourceConfig and ProcessingClusterConfig), and the instance encrypts
that storage itself. Which types have it follows the SageMaker Python SDK (src/sagemaker/utils.py,
instance_supports_kms): a "d" in the instance family (m5d, c5d, r5d, g4dn, p3dn, p4d, ...) or the g5 family.
"""

from __future__ import annotations

from typing import Any

VOLUME_GB = 30


def has_local_storage(instance_type: str) -> bool:
    family = instance_type.split(".")[1]
    return "d" in family or family.startswith("g5")


def job_resources(instance_type: str, kms_key_arn: str, instance_count: int = 1) -> dict[str, Any]:
    """`instance_count` instances of `instance_type`, each with a 30 GB volume, under the key unless the type
    refuses one."""
    resources: dict[str, Any] = {"InstanceCount": instance_count, "InstanceType": instance_type,
                                 "VolumeSizeInGB": VOLUME_GB}
    if not has_local_storage(instance_type):
        resources["VolumeKmsKeyId"] = kms_key_arn
    return resources
