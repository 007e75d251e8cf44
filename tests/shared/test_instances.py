"""The compute a job's request gives: the project's volume key, except for instance types with local NVMe
storage, which SageMaker refuses one for."""

from __future__ import annotations

import botocore.session
import pytest
from selfheal_bench.localcloud.instance_rules import volume_key_refusal
from selfheal_shared.instances import has_local_storage, job_resources

KEY = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000001"


@pytest.mark.parametrize(("instance_type", "keyed"), [("ml.m5.xlarge", True), ("ml.c5.2xlarge", True),
                                                      ("ml.p3.2xlarge", True), ("ml.m5d.large", False),
                                                      ("ml.g4dn.xlarge", False), ("ml.g5.12xlarge", False),
                                                      ("ml.p4d.24xlarge", False)])
def test_a_job_volume_is_under_the_projects_key_unless_the_instance_encrypts_its_own(instance_type, keyed):
    resources = job_resources(instance_type, KEY)
    assert resources == {"InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": 30,
                         **({"VolumeKmsKeyId": KEY} if keyed else {})}


def test_every_job_instance_type_sagemaker_offers_gets_a_request_sagemaker_accepts():
    # Given every instance type botocore lists for training and processing jobs
    model = botocore.session.get_session().get_service_model("sagemaker")
    for shape, operation, path in (("TrainingInstanceType", "CreateTrainingJob", "ResourceConfig"),
                                   ("ProcessingInstanceType", "CreateProcessingJob", "ProcessingResources")):
        for instance_type in model.shape_for(shape).enum:
            # When the product builds a job's compute for it; Then the local cloud (as strict as SageMaker) accepts it
            resources = job_resources(instance_type, KEY)
            request = {path: resources} if path == "ResourceConfig" else {path: {"ClusterConfig": resources}}
            assert volume_key_refusal(operation, request) is None, instance_type
            assert ("VolumeKmsKeyId" in resources) is not has_local_storage(instance_type)
