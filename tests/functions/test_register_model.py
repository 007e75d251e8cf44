"""RegisterModelFunction: a model package in selfheal-<model>, with metrics and lineage, once per run."""

import botocore.session
import pytest
import regex
from botocore.validate import ParamValidator
from registry import model_package_request
from selfheal_bench.fixtures.aws import CHURN, XGBOOST_IMAGE, event_files, load_event
from selfheal_shared.events import RegisterRequest

APPROVAL = {"auto.json": "Approved", "manual.json": "PendingManualApproval"}


@pytest.fixture
def register(load_handler, cloud, lambda_context):
    cloud.put_config("churn", CHURN)
    handler = load_handler("register_model").lambda_handler
    return lambda event: handler(event, lambda_context)


def test_every_sample_event_has_a_case():
    assert set(event_files("register_model")) == set(APPROVAL)


@pytest.mark.parametrize("name", sorted(APPROVAL))
def test_sample_event(cloud, register, name):
    event = load_event("register_model", name)

    result = register(event)

    assert result["model_package_group"] == "selfheal-churn"
    assert result["approval_status"] == APPROVAL[name]
    package = cloud.sagemaker.describe_model_package(ModelPackageName=result["model_package_arn"])
    assert package["ModelPackageGroupName"] == "selfheal-churn"
    assert package["ModelApprovalStatus"] == APPROVAL[name]
    [container] = package["InferenceSpecification"]["Containers"]
    assert container["Image"] == XGBOOST_IMAGE
    assert container["ModelDataUrl"] == event["model_data_url"]
    assert container["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py",
                                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
    assert package["InferenceSpecification"]["SupportedContentTypes"] == ["text/csv", "application/json"]
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"] == {"ContentType": "application/json",
                                                                    "S3Uri": event["evaluation_uri"]}
    assert package["CustomerMetadataProperties"] == {"run_id": event["run_id"], "code_uri": event["code_uri"],
                                                     "training_job": event["training_job_name"]}


def test_a_retried_invocation_returns_the_same_package(cloud, register):
    event = load_event("register_model", "auto.json")

    first, second = register(event), register(event)

    assert first == second
    packages = cloud.sagemaker.list_model_packages(ModelPackageGroupName="selfheal-churn")["ModelPackageSummaryList"]
    assert len(packages) == 1


def test_a_second_run_adds_a_version_to_the_existing_group(cloud, register):
    first = register(load_event("register_model", "auto.json"))
    second = register(load_event("register_model", "manual.json"))

    assert first["model_package_arn"] != second["model_package_arn"]
    assert len(cloud.sagemaker.list_model_package_groups()["ModelPackageGroupSummaryList"]) == 1


def test_the_request_matches_botocores_model_of_create_model_package(aws_env):
    """moto accepts shapes AWS refuses: check types, required members, enums, lengths and patterns."""
    request = RegisterRequest.model_validate(load_event("register_model", "manual.json"))
    params = model_package_request(request, "selfheal-churn", "ml.m5.large")
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model(
        "CreateModelPackage").input_shape

    report = ParamValidator().validate(params, shape)

    assert not report.has_errors(), report.generate_report()
    assert list(constraint_violations(params, shape)) == []


def constraint_violations(value, shape, path="CreateModelPackage"):
    """What ParamValidator leaves out: max lengths, enums and regex patterns of strings, maps, lists."""
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                yield from constraint_violations(value[name], member, f"{path}.{name}")
    elif shape.type_name == "list":
        if len(value) > shape.metadata.get("max", len(value)):
            yield f"{path}: more than {shape.metadata['max']} items"
        for index, item in enumerate(value):
            yield from constraint_violations(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map":
        if len(value) > shape.metadata.get("max", len(value)):
            yield f"{path}: more than {shape.metadata['max']} entries"
        for key, item in value.items():
            yield from constraint_violations(key, shape.key, f"{path} key {key}")
            yield from constraint_violations(item, shape.value, f"{path}.{key}")
    elif shape.type_name == "string":
        if len(value) > shape.metadata.get("max", len(value)):
            yield f"{path}: longer than {shape.metadata['max']}"
        if shape.enum and value not in shape.enum:
            yield f"{path}: {value!r} not one of {shape.enum[:5]}..."
        pattern = shape.metadata.get("pattern")
        if pattern and not regex.fullmatch(pattern, value):
            yield f"{path}: {value!r} does not match {pattern}"


def test_the_configured_deploy_instance_type_is_a_supported_realtime_type(aws_env):
    request = RegisterRequest.model_validate(load_event("register_model", "auto.json"))

    types = model_package_request(request, "selfheal-churn", "ml.c5.2xlarge")["InferenceSpecification"][
        "SupportedRealtimeInferenceInstanceTypes"]

    assert "ml.c5.2xlarge" in types and len(types) == len(set(types))
