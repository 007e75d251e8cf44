"""The table of permissions AWS services check on the caller's behalf (selfheal_bench.localcloud.on_behalf), and
the runtime audit that uses it: a caller whose role lacks one is refused as the service refuses it."""

from __future__ import annotations

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from selfheal_bench.localcloud.audit import CallAudit
from selfheal_bench.localcloud.faults import Faults
from selfheal_bench.localcloud.on_behalf import ON_BEHALF, needs_on_behalf
from selfheal_bench.localcloud.template import REGION

TARGET = {"ServiceNamespace": "sagemaker", "ResourceId": "endpoint/selfheal-churn/variant/AllTraffic",
          "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"}
TRACKING = {"PolicyName": "selfheal-churn-invocations", "PolicyType": "TargetTrackingScaling", **TARGET,
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 100.0,
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}}}


def test_every_entry_is_a_real_operation_or_integration_with_its_source():
    session = botocore.session.get_session()
    for entry in ON_BEHALF:
        assert entry.source, entry.call
        if entry.call.startswith("arn:aws:states:::"):
            continue
        service, operation = entry.call.split(":")
        assert operation in session.get_service_model(service).operation_names, entry.call


@pytest.fixture
def audit(policies):
    with mock_aws():
        audit = CallAudit(Faults(), allowed=lambda: policies.allowed)
        undo = audit.patch()
        try:
            yield audit
        finally:
            undo()


def test_application_auto_scaling_refuses_target_tracking_to_a_caller_without_cloudwatch_alarms(audit):
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    # Given a caller whose role may scale the variant but holds no CloudWatch alarm permissions
    with audit.acting_as("SmokeTestFunction"), pytest.raises(ClientError) as refused:
        scaling.put_scaling_policy(**TRACKING)
    # Then the policy is refused as Application Auto Scaling refuses it, naming what is missing
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "cloudwatch:PutMetricAlarm" in str(refused.value) and "cloudwatch:DeleteAlarms" in str(refused.value)
    # And RecordDeploymentFunction, which holds them, registers the variant and puts the policy
    with audit.acting_as("RecordDeploymentFunction"):
        scaling.register_scalable_target(**TARGET, MinCapacity=1, MaxCapacity=2)
        scaling.put_scaling_policy(**TRACKING)
    needed = {action for call in audit.calls if call.principal == "RecordDeploymentFunction"
              for action, _, _ in call.needs()}
    assert {"cloudwatch:PutMetricAlarm", "iam:CreateServiceLinkedRole", "sagemaker:DescribeEndpoint"} <= needed


def test_a_call_the_local_cloud_makes_while_serving_another_is_the_services_not_the_callers(audit):
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="nested-calls")
    def nested(**_):  # the service, answering the caller's call, makes one of its own
        boto3.client("s3", region_name=REGION).list_buckets()

    s3.meta.events.register("before-send.s3.PutObject", nested)
    with audit.acting_as("IngestFunction"):
        s3.put_object(Bucket="nested-calls", Key="k", Body=b"x")
    assert [(c.principal, c.operation) for c in audit.calls] == [("IngestFunction", "PutObject")]


# Each caller with a call it makes that a service checks more for (what the e2e loop may not reach, such as
# PrepareDeploy's deregistration, which happens only when a deployment changes the instance type).
SAGEMAKER_ROLE = "arn:aws:iam::123456789012:role/selfheal-SageMakerExecutionRole"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/selfheal-churn/3"
CALLS = [
    ("PrepareDeployFunction", "application-autoscaling:DeregisterScalableTarget", TARGET),
    ("RecordDeploymentFunction", "application-autoscaling:RegisterScalableTarget", TARGET),
    ("RecordDeploymentFunction", "application-autoscaling:PutScalingPolicy", TRACKING),
    ("DeployPipeline", "sagemaker:CreateModel", {
        "ModelName": "selfheal-churn-1a2b3c4d5e6f", "ExecutionRoleArn": SAGEMAKER_ROLE, "Tags": [{"Key": "k"}],
        "Containers": [{"ModelPackageName": PACKAGE}]}),
    ("DeployPipeline", "sagemaker:UpdateEndpoint", {
        "EndpointName": "selfheal-churn", "EndpointConfigName": "selfheal-churn-1a2b3c4d5e6f",
        "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "selfheal-churn-5xx-errors"}]}}}),
    ("SageMakerExecutionRole", "sagemaker:UpdateEndpoint", {
        "EndpointName": "selfheal-churn", "EndpointConfigName": "selfheal-churn-1a2b3c4d5e6f",
        "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "selfheal-churn-5xx-errors"}]}}}),
    ("TrainingPipeline", "sagemaker:CreateTrainingJob", {"TrainingJobName": "churn-1a2b3c4d5e6f-train-0",
                                                         "RoleArn": SAGEMAKER_ROLE, "Tags": [{"Key": "k"}]}),
    ("TrainingPipeline", "sagemaker:CreateProcessingJob", {"ProcessingJobName": "churn-1a2b3c4d5e6f-prep-0",
                                                           "RoleArn": SAGEMAKER_ROLE, "Tags": [{"Key": "k"}]}),
    ("MonitorPipeline", "sagemaker:CreateProcessingJob", {"ProcessingJobName": "churn-1a2b3c4d5e6f-mon-0",
                                                          "RoleArn": SAGEMAKER_ROLE, "Tags": [{"Key": "k"}]}),
]


@pytest.mark.parametrize(("caller", "call", "params"), CALLS, ids=[f"{c}-{op}" for c, op, _ in CALLS])
def test_each_caller_holds_what_aws_checks_on_its_behalf(policies, caller, call, params):
    needs = needs_on_behalf(call, params)
    assert needs, call
    role = f"arn:aws:iam::123456789012:role/{policies.physical('SageMakerExecutionRole')}"
    missing = [need for _, need in needs
               if not policies.allowed(caller, need[0], need[1].replace(SAGEMAKER_ROLE, role), need[2])]
    assert missing == []
