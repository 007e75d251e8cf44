"""Least privilege, checked on the template as deployed (after the SAM transform): no wildcard
actions, "*" resources only where the service has nothing narrower, iam:PassRole only to the
SageMaker role and only for SageMaker, and every call the ASL and the functions make is granted.
A test here fails when a policy widens."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asl_rules import all_states
from selfheal_bench.iam import Statement, TemplatePolicies, denied

ACCOUNT = "123456789012"
REGION = "us-east-1"

# Actions that take no resource narrower than "*" (AWS's service authorization reference).
# Step Functions' vended log delivery (AWS's documented policy for state machine logging).
LOG_DELIVERY = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
STAR_RESOURCE_ONLY = {
    # X-Ray has no resource-level permissions.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    *LOG_DELIVERY,
    # The registry login token is account-wide; image pulls themselves are scoped to repositories.
    "ecr:GetAuthorizationToken",
    # Metrics have no resource; the statement is limited by the cloudwatch:namespace condition.
    "cloudwatch:PutMetricData",
    # A scalable target's ARN is made up by Application Auto Scaling when it is registered; the statements
    # are held to SageMaker variants by the service-namespace and scalable-dimension conditions.
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeregisterScalableTarget",
    # EC2 Describe* actions take no resource (only with the optional VPC).
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
}
RESOURCE_POLICIES = {
    "AWS::S3::BucketPolicy": "PolicyDocument",
    "AWS::SQS::QueuePolicy": "PolicyDocument",
    "AWS::SNS::TopicPolicy": "PolicyDocument",
    "AWS::KMS::Key": "KeyPolicy",
}
SYNC_RULES = {
    "createProcessingJob": ("processing-job", "ProcessingJobName", "ProcessingJob", "ProcessingJobs"),
    "createTrainingJob": ("training-job", "TrainingJobName", "TrainingJob", "TrainingJobs"),
}
SAGEMAKER_TASK = re.compile(r"^arn:aws:states:::sagemaker:(\w+?)(\.sync)?$")
SDK_TASK = re.compile(r"^arn:aws:states:::aws-sdk:sagemaker:(\w+)$")
SAGEMAKER_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
# SageMaker hosting calls, by optimized integration: (action, resource kind, name field).
HOSTING = {
    "createModel": ("CreateModel", "model", "ModelName"),
    "createEndpointConfig": ("CreateEndpointConfig", "endpoint-config", "EndpointConfigName"),
    "createEndpoint": ("CreateEndpoint", "endpoint", "EndpointName"),
    "updateEndpoint": ("UpdateEndpoint", "endpoint", "EndpointName"),
}
# Roles that may pass which role to which service: the pipelines the SageMaker role to SageMaker,
# RecordDeploymentFunction the scheduler role to EventBridge Scheduler.
PASSES = {
    ("TrainingPipelineRole", "SageMakerExecutionRole", "sagemaker.amazonaws.com"),
    ("DeployPipelineRole", "SageMakerExecutionRole", "sagemaker.amazonaws.com"),
    ("MonitorPipelineRole", "SageMakerExecutionRole", "sagemaker.amazonaws.com"),
    ("RecordDeploymentFunctionRole", "MonitorSchedulerRole", "scheduler.amazonaws.com"),
}


def identity_statements(view: TemplatePolicies) -> list[Statement]:
    """Every role's statements (inline, managed, and AWS::IAM::Policy resources attached to it)."""
    return [s for name, r in view.resources.items() if r["Type"] == "AWS::IAM::Role" for s in view.statements(name)]


def resource_policy_statements(view: TemplatePolicies) -> list[Statement]:
    found = []
    for name, resource in view.resources.items():
        field = RESOURCE_POLICIES.get(resource["Type"])
        if field:
            document = view.resolve(resource["Properties"][field])
            found += [Statement.parse(s, name) for s in document["Statement"]]
    return found


def role_arns(view: TemplatePolicies) -> dict[str, str]:
    return {n: view.physical(n, "Arn") for n, r in view.resources.items() if r["Type"] == "AWS::IAM::Role"}


@pytest.fixture(params=["no-vpc", "vpc"])
def view(request) -> TemplatePolicies:
    return request.getfixturevalue("vpc_policies" if request.param == "vpc" else "policies")


def test_no_policy_grants_a_wildcard_action(view):
    # Given every statement in every role and resource policy
    statements = identity_statements(view) + resource_policy_statements(view)
    # Then no action is "*", and a service-wide "svc:*" appears only in a Deny or in the key
    # policy's statement that hands the key's administration to IAM
    for s in statements:
        assert "*" not in s.actions, s
        assert not s.not_actions, f"{s.source}: NotAction grants everything else"
        for action in s.actions:
            if action.endswith(":*"):
                assert s.effect == "Deny" or (s.source == "Key" and s.sid == "AccountAdministersViaIam"), s


def test_star_resources_only_where_the_service_has_nothing_narrower(view):
    # Given every Allow in every role
    for s in identity_statements(view):
        if s.effect == "Allow" and "*" in s.resources:
            # Then each of its actions is one that takes no narrower resource
            assert set(s.actions) <= STAR_RESOURCE_ONLY, f"{s.source}/{s.sid}: {set(s.actions) - STAR_RESOURCE_ONLY}"


def test_pass_role_only_to_the_sagemaker_role_and_only_for_sagemaker(view):
    # Given every role in the template, and every role it could pass
    roles = role_arns(view)
    services = ("sagemaker.amazonaws.com", "scheduler.amazonaws.com", "lambda.amazonaws.com", "ec2.amazonaws.com")
    for holder in roles:
        for target, arn in roles.items():
            for service in services:
                # When the holder passes the target role to the service
                granted = view.allowed(holder, "iam:PassRole", arn, {"iam:PassedToService": service})
                # Then only the pipelines may pass the SageMaker role, to SageMaker, and only
                # RecordDeploymentFunction the scheduler's role, to EventBridge Scheduler
                assert granted is ((holder, target, service) in PASSES), (holder, target, service)
    # and never without saying to which service
    for holder, target, _ in PASSES:
        assert not view.allowed(holder, "iam:PassRole", roles[target])


def implied_calls(state: dict[str, Any], sent: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """The API calls Step Functions makes for one Task (AWS's IAM policies for integrated services)."""
    resource = state["Resource"]
    if resource == "arn:aws:states:::lambda:invoke":
        return [("lambda:InvokeFunction", sent["FunctionName"], {})]
    if resource == "arn:aws:states:::states:startExecution.sync:2":
        execution = sent["StateMachineArn"].replace(":stateMachine:", ":execution:") + f":{sent['Name']}"
        rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"
        return [("states:StartExecution", sent["StateMachineArn"], {}), ("states:DescribeExecution", execution, {}),
                ("states:StopExecution", execution, {}),
                *[(f"events:{a}", rule, {}) for a in ("PutTargets", "PutRule", "DescribeRule")]]
    sdk = SDK_TASK.match(resource)
    if sdk:
        action = sdk.group(1)[0].upper() + sdk.group(1)[1:]
        return [(f"sagemaker:{action}", f"{SAGEMAKER_ARN}:endpoint/{sent['EndpointName'].lower()}", {})]
    match = SAGEMAKER_TASK.match(resource)
    assert match, f"no IAM expectations for {resource}: add them here"
    if match.group(1) in HOSTING:
        action, kind, name_field = HOSTING[match.group(1)]
        arn = f"{SAGEMAKER_ARN}:{kind}/{sent[name_field].lower()}"
        calls = [(f"sagemaker:{action}", arn, {})]
        if "Tags" in sent:
            calls.append(("sagemaker:AddTags", arn, {}))
        if "ExecutionRoleArn" in sent:
            calls.append(("iam:PassRole", sent["ExecutionRoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"}))
        if "EndpointConfigName" in sent and kind == "endpoint":
            config = f"{SAGEMAKER_ARN}:endpoint-config/{sent['EndpointConfigName'].lower()}"
            calls.append((f"sagemaker:{action}", config, {}))
        return calls
    kind, name_field, noun, rule = SYNC_RULES[match.group(1)]
    job_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:{kind}/{sent[name_field].lower()}"
    calls = [(f"sagemaker:Create{noun}", job_arn, {}), ("sagemaker:AddTags", job_arn, {})]
    calls.append(("iam:PassRole", sent["RoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    if match.group(2):
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForSageMaker{rule}Rule"
        calls += [(f"sagemaker:Describe{noun}", job_arn, {}), (f"sagemaker:Stop{noun}", job_arn, {})]
        calls += [(f"events:{a}", rule_arn, {}) for a in ("PutTargets", "PutRule", "DescribeRule")]
    return calls


@pytest.mark.parametrize("machine", ["TrainingPipeline", "DeployPipeline", "MonitorPipeline"])
def test_the_pipeline_role_grants_every_call_its_tasks_make(view, render, fill, machine):
    # Given each Task of the rendered state machine, filled from its sample state
    definition = render(view, machine)
    key = view.physical("Key", "Arn")
    calls = [
        call
        for _, state in all_states(definition)
        if state["Type"] == "Task"
        for retry in (0, 3)
        for call in implied_calls(state, fill(state["Parameters"], retry_count=retry, machine=machine))
    ]
    # plus logging, tracing and the key grants for encrypted job volumes
    calls += [(action, "*", {}) for action in LOG_DELIVERY]
    calls += [("xray:PutTraceSegments", "*", {}), ("xray:PutTelemetryRecords", "*", {})]
    calls += [("kms:CreateGrant", key, {"kms:GrantIsForAWSResource": "true"}), ("kms:DescribeKey", key, {})]
    # Then the state machine's role allows each of them
    missing = [c for c in calls if not view.allowed(machine, *c)]
    assert missing == []


def test_the_serving_pipelines_reach_only_selfheal_resources(policies):
    # Given SageMaker resources and functions that are not theirs
    p = policies
    others = {
        "DeployPipeline": [
            ("sagemaker:UpdateEndpoint", f"{SAGEMAKER_ARN}:endpoint/someone-elses-endpoint"),
            ("sagemaker:DeleteEndpoint", f"{SAGEMAKER_ARN}:endpoint/prod-fraud"),
            ("sagemaker:CreateModel", f"{SAGEMAKER_ARN}:model/adhoc"),
            ("sagemaker:CreateProcessingJob", f"{SAGEMAKER_ARN}:processing-job/churn-1a2b-mon-0"),
            ("lambda:InvokeFunction", p.physical("ViolationFunction", "Arn")),
        ],
        "MonitorPipeline": [
            ("sagemaker:CreateProcessingJob", f"{SAGEMAKER_ARN}:processing-job/churn-1a2b-prep-0"),
            ("sagemaker:UpdateEndpoint", f"{SAGEMAKER_ARN}:endpoint/selfheal-churn"),
            ("lambda:InvokeFunction", p.physical("RecordDeploymentFunction", "Arn")),
        ],
    }
    # Then none of them is allowed
    for machine, calls in others.items():
        allowed = [c for c in calls if p.allowed(machine, *c, {"iam:PassedToService": "sagemaker.amazonaws.com"})]
        assert allowed == [], machine


def test_the_scheduler_may_only_start_monitoring(policies):
    p = policies
    monitor = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-MonitorPipeline"
    assert p.allowed("MonitorSchedulerRole", "states:StartExecution", monitor)
    assert not p.allowed("MonitorSchedulerRole", "states:StartExecution", monitor.replace("Monitor", "Training"))
    assert not p.allowed("MonitorSchedulerRole", "lambda:InvokeFunction", p.physical("ViolationFunction", "Arn"))


def test_the_pipeline_role_reaches_no_other_jobs_or_functions(policies):
    # Given jobs and functions that are not the pipeline's
    p = policies
    others = [
        ("sagemaker:CreateTrainingJob", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/someone-elses-job"),
        ("sagemaker:CreateProcessingJob", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/adhoc"),
        ("lambda:InvokeFunction", p.physical("IngestFunction", "Arn")),
        ("iam:PassRole", p.physical("IngestFunctionRole", "Arn")),
        ("s3:GetObject", p.physical("DataBucket", "Arn") + "/datasets/churn/x.csv"),
    ]
    # Then none of them is allowed
    assert [
        c for c in others if p.allowed("TrainingPipeline", *c, {"iam:PassedToService": "sagemaker.amazonaws.com"})
    ] == []


def function_needs(p: TemplatePolicies) -> dict[str, list[tuple[str, str]]]:
    """What each function does at run time: docs/architecture.md's S3 layout, ledger and "Starting a
    run", and the calls the handlers and selfheal_shared make (idempotency records live in the ledger)."""
    bucket = p.physical("DataBucket", "Arn")
    table = p.physical("LedgerTable", "Arn")
    topic = p.physical("NotifyTopic")
    key = p.physical("Key", "Arn")
    pipeline = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-TrainingPipeline"
    run = "artifacts/churn/churn-upload-1a2b3c4d5e6f"
    idempotency = [(f"dynamodb:{a}", table) for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")]
    ledger = [*idempotency, ("dynamodb:Query", table)]
    start_run = [  # selfheal_shared.runs.maybe_start_run
        ("s3:GetObject", f"{bucket}/config/churn.yaml"),
        ("s3:GetObject", f"{bucket}/config/churn.json"),
        ("s3:ListBucket", bucket),
        ("s3:PutObject", f"{bucket}/{run}/input/config.json"),
        ("s3:PutObject", f"{bucket}/{run}/input/datasets.manifest"),
        ("s3:PutObject", f"{bucket}/{run}/champion/champion.json"),
        ("s3:GetObject", f"{bucket}/artifacts/churn/older-run/model/job/output/model.tar.gz"),
        ("s3:PutObject", f"{bucket}/{run}/champion/model.tar.gz"),
        ("s3:AbortMultipartUpload", f"{bucket}/{run}/champion/model.tar.gz"),
        ("states:StartExecution", pipeline),
        ("states:DescribeExecution", pipeline.replace(":stateMachine:", ":execution:") + ":churn-upload-0123"),
        *ledger,
    ]

    def runtime(function: str) -> list[tuple[str, str]]:  # every function logs, traces and decrypts
        log_group = p.physical(f"{function}LogGroup", "Arn")
        return [
            ("logs:CreateLogStream", log_group),
            ("logs:PutLogEvents", log_group),
            ("xray:PutTraceSegments", "*"),
            ("kms:Decrypt", key),
            ("kms:GenerateDataKey", key),
        ]

    return {
        "IngestFunction": [
            *runtime("IngestFunction"),
            ("s3:GetObject", f"{bucket}/incoming/churn/data.csv"),
            ("s3:GetObjectVersion", f"{bucket}/incoming/churn/data.csv"),
            ("s3:DeleteObject", f"{bucket}/incoming/churn/data.csv"),
            ("s3:PutObject", f"{bucket}/datasets/churn/20250101T000000000000Z/data.csv"),
            ("s3:PutObject", f"{bucket}/quarantine/churn/20250101T000000000000Z/data.csv"),
            ("s3:PutObject", f"{bucket}/quarantine/churn/20250101T000000000000Z/data.csv.reason.json"),
            ("s3:AbortMultipartUpload", f"{bucket}/datasets/churn/20250101T000000000000Z/data.csv"),
            ("sns:Publish", topic),
            ("sqs:SendMessage", p.physical("IngestDLQ", "Arn")),
            *start_run,
        ],
        "EvaluateGateFunction": [
            *runtime("EvaluateGateFunction"),
            ("s3:GetObject", f"{bucket}/{run}/evaluation/evaluation.json"),
            ("s3:ListBucket", bucket),
            ("dynamodb:UpdateItem", table),
        ],
        "RegisterModelFunction": [
            *runtime("RegisterModelFunction"),
            *idempotency,
            *[
                (f"sagemaker:{a}", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/selfheal-churn")
                for a in ("CreateModelPackageGroup", "DescribeModelPackageGroup", "AddTags")
            ],
            *[
                (f"sagemaker:{a}", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/selfheal-churn/1")
                for a in ("CreateModelPackage", "DescribeModelPackage", "AddTags")
            ],
        ],
        "RecordRunFunction": [
            *runtime("RecordRunFunction"),
            ("sns:Publish", topic),
            ("sagemaker:DescribeModelPackage", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/selfheal-churn/1"),
            *start_run,
        ],
        **serving_needs(p, runtime, ledger, start_run),
    }


def serving_needs(p: TemplatePolicies, runtime, ledger, start_run) -> dict[str, list[tuple[str, str]]]:
    """The serving functions (docs/architecture.md, "Deploy and heal"); their autoscaling calls, which
    need a condition context, are checked on their own below."""
    bucket = p.physical("DataBucket", "Arn")
    table = p.physical("LedgerTable", "Arn")
    package = f"{SAGEMAKER_ARN}:model-package/selfheal-churn/2"
    endpoint = f"{SAGEMAKER_ARN}:endpoint/selfheal-churn"
    config = f"{SAGEMAKER_ARN}:endpoint-config/selfheal-churn-0a1b2c3d4e5f"
    run = "artifacts/churn/churn-drift-9f8e7d6c5b4a"
    monitoring = "monitoring/churn/monitor-churn-0123456789ab"
    read_config = [("s3:GetObject", f"{bucket}/config/churn.yaml"), ("s3:ListBucket", bucket)]
    return {
        "PrepareDeployFunction": [
            *runtime("PrepareDeployFunction"), *read_config,
            ("sagemaker:DescribeModelPackage", package),
            ("sagemaker:DescribeEndpoint", endpoint),
            ("sagemaker:DescribeEndpointConfig", config),
            ("cloudwatch:PutMetricAlarm", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:selfheal-churn-5xx-errors"),
            ("cloudwatch:PutMetricAlarm", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:selfheal-churn-model-latency"),
        ],
        "SmokeTestFunction": [
            *runtime("SmokeTestFunction"),
            ("s3:GetObject", f"{bucket}/{run}/preprocess/test/test.csv"),
            ("s3:ListBucket", bucket),
            ("sagemaker:InvokeEndpoint", endpoint),
        ],
        "RecordDeploymentFunction": [
            *runtime("RecordDeploymentFunction"), *read_config,
            *[(f"dynamodb:{a}", table) for a in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")],
            ("sns:Publish", p.physical("NotifyTopic")),
            ("sagemaker:DescribeModelPackage", package),
            *[(f"sagemaker:{a}", endpoint) for a in ("DescribeEndpoint", "UpdateEndpointWeightsAndCapacities")],
            ("sagemaker:DescribeEndpointConfig", config),
            *[(f"scheduler:{a}", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/"
                                 f"{p.physical('MonitorScheduleGroup')}/selfheal-monitor-churn")
              for a in ("CreateSchedule", "UpdateSchedule")],
        ],
        "ApprovalFunction": [
            *runtime("ApprovalFunction"), *read_config,
            ("sqs:SendMessage", p.physical("ApprovalDLQ", "Arn")),
            ("sagemaker:DescribeModelPackage", package),
            ("dynamodb:Query", table),
            ("states:StartExecution", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-DeployPipeline"),
        ],
        "PrepareMonitorFunction": [
            *runtime("PrepareMonitorFunction"), *read_config,
            ("dynamodb:GetItem", table), ("dynamodb:Query", table),
            ("s3:GetObject", f"{bucket}/{run}/preprocess/baseline/constraints.json"),
            ("s3:PutObject", f"{bucket}/{monitoring}/baseline/constraints.json"),
            ("s3:PutObject", f"{bucket}/{monitoring}/input/capture.manifest"),
        ],
        "ViolationFunction": [
            *runtime("ViolationFunction"),
            ("s3:GetObject", f"{bucket}/{monitoring}/report/constraint_violations.json"),
            ("s3:GetObject", f"{bucket}/{monitoring}/report/drift_metrics.json"),
            ("sns:Publish", p.physical("NotifyTopic")),
            *ledger, *start_run,
        ],
    }


def test_autoscaling_is_granted_only_for_sagemaker_variants(policies):
    # Given the Application Auto Scaling calls RecordDeployment and PrepareDeploy make
    target = "*"
    variants = {"application-autoscaling:service-namespace": "sagemaker",
                "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount"}
    tables = {"application-autoscaling:service-namespace": "dynamodb",
              "application-autoscaling:scalable-dimension": "dynamodb:table:ReadCapacityUnits"}
    for function, action in (("RecordDeploymentFunction", "application-autoscaling:RegisterScalableTarget"),
                             ("RecordDeploymentFunction", "application-autoscaling:PutScalingPolicy"),
                             ("PrepareDeployFunction", "application-autoscaling:DeregisterScalableTarget")):
        # Then they are allowed on endpoint variants, and on nothing else Application Auto Scaling scales
        assert policies.allowed(function, action, target, variants), (function, action)
        assert not policies.allowed(function, action, target, tables), (function, action)
    # and the first registration may create Application Auto Scaling's role for SageMaker, and no other role
    role = (f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint")
    create = ("RecordDeploymentFunction", "iam:CreateServiceLinkedRole", role)
    assert policies.allowed(*create, {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"})
    assert not policies.allowed(*create, {"iam:AWSServiceName": "ecs.application-autoscaling.amazonaws.com"})


def test_every_function_role_grants_what_the_function_does(policies):
    # Given what each function does, per docs/architecture.md
    for function, calls in function_needs(policies).items():
        # Then its role allows all of it
        assert denied(policies, function, calls) == [], function


def test_functions_cannot_touch_what_is_not_theirs(policies):
    # Given calls outside each function's part of the contract
    p = policies
    bucket = p.physical("DataBucket", "Arn")
    forbidden = {
        "IngestFunction": [
            ("s3:PutObject", f"{bucket}/code/v1/train.py"),
            ("s3:DeleteObject", f"{bucket}/datasets/churn/a.csv"),
            ("sagemaker:CreateModelPackage", f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/selfheal-churn/1"),
        ],
        "EvaluateGateFunction": [
            ("s3:PutObject", f"{bucket}/artifacts/churn/r/evaluation/evaluation.json"),
            ("dynamodb:PutItem", p.physical("LedgerTable", "Arn")),
        ],
        "RegisterModelFunction": [
            ("s3:GetObject", f"{bucket}/artifacts/churn/r/model/job/output/model.tar.gz"),
            ("dynamodb:Query", p.physical("LedgerTable", "Arn")),
            (
                "sagemaker:CreateModelPackageGroup",
                f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package-group/other-team",
            ),
        ],
        "RecordRunFunction": [
            ("s3:PutObject", f"{bucket}/datasets/churn/a.csv"),
            ("s3:GetObject", f"{bucket}/incoming/churn/a.csv"),
        ],
        "PrepareDeployFunction": [
            ("sagemaker:UpdateEndpoint", f"{SAGEMAKER_ARN}:endpoint/selfheal-churn"),
            ("cloudwatch:PutMetricAlarm", f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:prod-billing-errors"),
            ("dynamodb:PutItem", p.physical("LedgerTable", "Arn")),
        ],
        "SmokeTestFunction": [
            ("sagemaker:InvokeEndpoint", f"{SAGEMAKER_ARN}:endpoint/prod-fraud"),
            ("s3:GetObject", f"{bucket}/datasets/churn/a.csv"),
        ],
        "RecordDeploymentFunction": [
            ("sagemaker:UpdateEndpoint", f"{SAGEMAKER_ARN}:endpoint/selfheal-churn"),
            ("scheduler:CreateSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/selfheal-monitor-x"),
            ("scheduler:DeleteSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/"
                                         f"{p.physical('MonitorScheduleGroup')}/selfheal-monitor-churn"),
        ],
        "ApprovalFunction": [
            ("states:StartExecution", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-TrainingPipeline"),
            ("dynamodb:PutItem", p.physical("LedgerTable", "Arn")),
        ],
        "PrepareMonitorFunction": [
            ("s3:PutObject", f"{bucket}/artifacts/churn/r/preprocess/baseline/constraints.json"),
            ("s3:GetObject", f"{bucket}/incoming/churn/a.csv"),
            ("dynamodb:PutItem", p.physical("LedgerTable", "Arn")),
        ],
        "ViolationFunction": [
            ("s3:PutObject", f"{bucket}/monitoring/churn/x/report/constraint_violations.json"),
            ("states:StartExecution", f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:selfheal-DeployPipeline"),
        ],
    }
    for function, calls in forbidden.items():
        # Then its role allows none of them
        assert [c for c in calls if p.allowed(function, *c)] == [], function


def test_sagemaker_jobs_read_their_inputs_and_write_only_artifacts(policies, fill, render):
    # Given the SageMaker execution role and the requests the pipeline sends
    p = policies
    bucket = p.physical("DataBucket", "Arn")
    run = "artifacts/churn/churn-upload-1a2b3c4d5e6f"
    reads = [
        "code/0123456789abcdef/preprocess.py",
        "datasets/churn/20250101T000000000000Z/data.csv",
        f"{run}/input/config.json",
        f"{run}/preprocess/train/train.csv",
        f"{run}/champion/champion.json",
    ]
    writes = [
        f"{run}/preprocess/train/train.csv",
        f"{run}/model/job/output/model.tar.gz",
        f"{run}/checkpoints/ckpt-1",
        f"{run}/evaluation/evaluation.json",
    ]
    # Then it reads inputs and writes artifacts
    assert [k for k in reads if not p.allowed("SageMakerExecutionRole", "s3:GetObject", f"{bucket}/{k}")] == []
    assert [k for k in writes if not p.allowed("SageMakerExecutionRole", "s3:PutObject", f"{bucket}/{k}")] == []
    for prefix in ("code/0123456789abcdef/", "datasets/churn/", f"{run}/preprocess/train"):
        assert p.allowed("SageMakerExecutionRole", "s3:ListBucket", bucket, {"s3:prefix": prefix})
    # and pulls exactly the images the pipeline runs
    for state in render(p, "TrainingPipeline")["States"].values():
        if state["Type"] == "Task" and state["Resource"].startswith("arn:aws:states:::sagemaker:"):
            sent = fill(state["Parameters"])
            image = sent.get("AppSpecification", {}).get("ImageUri") or sent["AlgorithmSpecification"]["TrainingImage"]
            account, repository = image.split(".", 1)[0], image.split("/", 1)[1].split(":", 1)[0]
            repo_arn = f"arn:aws:ecr:{REGION}:{account}:repository/{repository}"
            assert p.allowed("SageMakerExecutionRole", "ecr:BatchGetImage", repo_arn)
    # and, for the endpoints and the monitor, writes data capture and reports and reads them
    monitoring = "monitoring/churn/monitor-churn-0123456789ab"
    capture = "capture/churn/selfheal-churn/AllTraffic/2026/01/01/00/00-00-1.jsonl"
    for key in (capture, f"{monitoring}/input/capture.manifest", f"{monitoring}/baseline/constraints.json"):
        assert p.allowed("SageMakerExecutionRole", "s3:GetObject", f"{bucket}/{key}"), key
    for key in (capture, f"{monitoring}/report/constraint_violations.json"):
        assert p.allowed("SageMakerExecutionRole", "s3:PutObject", f"{bucket}/{key}"), key
    assert p.allowed("SageMakerExecutionRole", "s3:ListBucket", bucket, {"s3:prefix": "capture/churn/"})
    # but never writes inputs, uploads, code or the ledger
    for key in ("code/v/train.py", "datasets/churn/a.csv", "incoming/churn/a.csv", "config/churn.yaml"):
        assert not p.allowed("SageMakerExecutionRole", "s3:PutObject", f"{bucket}/{key}"), key
    assert not p.allowed("SageMakerExecutionRole", "s3:GetObject", f"{bucket}/incoming/churn/a.csv")
    assert not p.allowed("SageMakerExecutionRole", "s3:ListBucket", bucket, {"s3:prefix": "incoming/"})
    assert not p.allowed("SageMakerExecutionRole", "dynamodb:PutItem", p.physical("LedgerTable", "Arn"))


def test_vpc_permissions_exist_only_with_a_vpc(policies, vpc_policies):
    # Given the template with and without SubnetIds / SecurityGroupIds
    eni = f"arn:aws:ec2:{REGION}:{ACCOUNT}:network-interface/eni-0123"
    # Then only the VPC variant lets jobs create their network interfaces
    assert vpc_policies.allowed("SageMakerExecutionRole", "ec2:CreateNetworkInterface", eni)
    assert not policies.allowed("SageMakerExecutionRole", "ec2:CreateNetworkInterface", eni)


EVALUATOR_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Strict:
    Type: String
    Default: "yes"
Conditions:
  IsStrict: !Equals [!Ref Strict, "yes"]
Resources:
  Bucket:
    Type: AWS::S3::Bucket
  Generated:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      Policies:
        - S3ReadPolicy:
            BucketName: !Ref Bucket
        - Statement:
            - Effect: Allow
              NotAction: [iam:*, s3:DeleteObject]
              Resource: !Sub arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:jobs-*
            - Effect: Deny
              Action: sqs:Purge*
              Resource: "*"
            - Effect: Allow
              Action: kms:Decrypt
              Resource: !If [IsStrict, !Sub "arn:aws:kms:${AWS::Region}:${AWS::AccountId}:key/k1", "*"]
              Condition:
                StringNotEquals:
                  kms:ViaService: lambda.us-east-1.amazonaws.com
            - Effect: Allow
              Action: s3:ListBucketVersions
              Resource: !Select [0, !Split [",", !Sub "${Bucket.Arn},other"]]
              Condition:
                StringLikeIfExists:
                  s3:prefix: [data/*]
"""


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory) -> TemplatePolicies:
    folder = tmp_path_factory.mktemp("evaluator")
    (folder / "template.yaml").write_text(EVALUATOR_TEMPLATE)
    physical = {("Bucket", None): "my-bucket", ("Bucket", "Arn"): "arn:aws:s3:::my-bucket"}
    return TemplatePolicies(
        folder / "template.yaml", account_id="111122223333", resolver=lambda i, a: physical.get((i, a))
    )


def test_the_evaluator_expands_sam_generated_roles_and_policy_templates(evaluator):
    # Given a function whose role SAM generates, with a policy template and the basic execution role
    # Then the policy template is expanded with the resolver's bucket name
    assert evaluator.role_of("Generated") == "GeneratedRole"
    assert evaluator.allowed("Generated", "s3:GetObject", "arn:aws:s3:::my-bucket/any/key")
    assert not evaluator.allowed("Generated", "s3:GetObject", "arn:aws:s3:::another-bucket/key")
    # and the AWS managed policy SAM attaches is evaluated from its known document
    assert evaluator.allowed("Generated", "logs:PutLogEvents", "arn:aws:logs:us-east-1:111122223333:log-group:x:*")


def test_the_evaluator_follows_iam_semantics(evaluator):
    queue = "arn:aws:sqs:us-east-1:111122223333:jobs-1"
    # NotAction grants everything else, case-insensitively, on the matching resources only
    assert evaluator.allowed("Generated", "sqs:SendMessage", queue)
    assert evaluator.allowed("Generated", "SQS:sendmessage", queue)
    assert not evaluator.allowed("Generated", "iam:PassRole", queue)
    assert not evaluator.allowed("Generated", "sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:other")
    # an explicit Deny wins over an Allow
    assert not evaluator.allowed("Generated", "sqs:PurgeQueue", queue)
    # conditions: a negated operator passes when its key is missing, IfExists too
    key = "arn:aws:kms:us-east-1:111122223333:key/k1"
    assert evaluator.allowed("Generated", "kms:Decrypt", key)
    assert not evaluator.allowed("Generated", "kms:Decrypt", key, {"kms:ViaService": "lambda.us-east-1.amazonaws.com"})
    bucket = "arn:aws:s3:::my-bucket"
    assert evaluator.allowed("Generated", "s3:ListBucketVersions", bucket)
    assert evaluator.allowed("Generated", "s3:ListBucketVersions", bucket, {"s3:prefix": "data/x"})
    assert not evaluator.allowed("Generated", "s3:ListBucketVersions", bucket, {"s3:prefix": "logs/"})


def test_the_evaluator_resolves_conditions_from_parameters(tmp_path):
    # Given the same template deployed with the condition off
    (tmp_path / "template.yaml").write_text(EVALUATOR_TEMPLATE)
    lax = TemplatePolicies(tmp_path / "template.yaml", account_id="111122223333", parameters={"Strict": "no"})
    # Then the !If picks the other branch
    assert lax.allowed("Generated", "kms:Decrypt", "arn:aws:kms:eu-west-1:999999999999:key/other")
