"""ApprovalFunction: a package approved by hand deploys; nothing else does, and nothing deploys twice."""

import json

import pytest
from selfheal_bench.fixtures.aws import CHURN, event_files, load_event
from selfheal_bench.fixtures.serving import DEPLOY_PIPELINE_ARN, executions, given_package
from selfheal_shared import ledger
from selfheal_shared.serving import deploy_execution_name

MANUAL = CHURN | {"approval": "manual"}


@pytest.fixture
def approve(load_handler, serving_cloud, lambda_context):
    """approve(event file, package arn) -> the handler's result for that package's event."""
    handler = load_handler("approval").lambda_handler

    def run(name: str, package_arn: str) -> dict:
        event = load_event("approval", name)
        event["detail"]["ModelPackageArn"] = event["resources"][0] = package_arn
        return handler(event, lambda_context)

    return run


def approved_package(cloud, approval: str = "PendingManualApproval") -> str:
    """A package registered pending approval by run churn-upload-5e6f7a8b9c0d (its RUN item names it, as
    RecordRunFunction records), then set to `approval` in the Model Registry."""
    arn = given_package(cloud, approval="PendingManualApproval", run_id="churn-upload-5e6f7a8b9c0d")
    ledger.put_run("churn", "churn-upload-5e6f7a8b9c0d", status="SUCCEEDED", decision="registered",
                   model_package_arn=arn)
    if approval != "PendingManualApproval":
        cloud.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=approval)
    return arn


def test_every_sample_event_has_a_test():
    assert set(event_files("approval")) == {"approved_by_hand.json", "registered_approved.json"}


def test_approved_by_hand(approve, serving_cloud):
    # Given a model approved by hand, and its package approved in the Model Registry
    serving_cloud.put_config("churn", MANUAL)
    arn = approved_package(serving_cloud, "Approved")
    # When the approval event arrives
    result = approve("approved_by_hand.json", arn)
    # Then DeployPipeline starts for the package, under the name TrainingPipeline would use
    assert result["started"] and result["model"] == "churn"
    (execution,) = executions(serving_cloud, DEPLOY_PIPELINE_ARN)
    assert execution["name"] == deploy_execution_name(arn) and result["execution_arn"] == execution["executionArn"]
    described = serving_cloud.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"model": "churn", "model_package_arn": arn,
                                              "run_id": "churn-upload-5e6f7a8b9c0d"}


def test_a_duplicate_event_starts_nothing_new(approve, serving_cloud):
    serving_cloud.put_config("churn", MANUAL)
    arn = approved_package(serving_cloud, "Approved")
    first, second = approve("approved_by_hand.json", arn), approve("approved_by_hand.json", arn)
    assert first["started"] and second["started"] and second["execution_arn"] == first["execution_arn"]
    assert len(executions(serving_cloud, DEPLOY_PIPELINE_ARN)) == 1


def test_registered_approved(approve, serving_cloud):
    # Given a model approved automatically: SageMaker announces its packages as Approved on creation
    serving_cloud.put_config("churn", CHURN)
    arn = given_package(serving_cloud, run_id="churn-upload-1a2b3c4d5e6f")
    # Then nothing starts here: TrainingPipeline deploys those itself
    result = approve("registered_approved.json", arn)
    assert not result["started"] and "TrainingPipeline deploys" in result["reason"]
    assert executions(serving_cloud, DEPLOY_PIPELINE_ARN) == []


@pytest.mark.parametrize(("status", "why"), [("Rejected", "is Rejected now"),
                                             ("PendingManualApproval", "is PendingManualApproval now")])
def test_a_package_no_longer_approved_does_not_deploy(approve, serving_cloud, status, why):
    # Given an approval event that arrives after the package was rejected (events come late, out of order)
    serving_cloud.put_config("churn", MANUAL)
    arn = approved_package(serving_cloud, status)
    result = approve("approved_by_hand.json", arn)
    assert not result["started"] and why in result["reason"]
    assert executions(serving_cloud, DEPLOY_PIPELINE_ARN) == []


def test_a_model_without_configuration_is_ignored(approve, serving_cloud):
    arn = approved_package(serving_cloud, "Approved")
    result = approve("approved_by_hand.json", arn)
    assert not result["started"] and "no configuration" in result["reason"]


def test_the_run_comes_from_the_packages_lineage_metadata(approve, serving_cloud):
    # Given an approved package whose metadata names its run, which the ledger does not (yet) link to it
    serving_cloud.put_config("churn", MANUAL)
    arn = given_package(serving_cloud, approval="Approved", run_id="churn-upload-7a8b9c0d1e2f")
    # Then it deploys for that run
    assert approve("approved_by_hand.json", arn)["started"]
    (execution,) = executions(serving_cloud, DEPLOY_PIPELINE_ARN)
    described = serving_cloud.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"])["run_id"] == "churn-upload-7a8b9c0d1e2f"


def test_a_package_no_selfheal_run_registered_is_ignored(approve, serving_cloud):
    serving_cloud.put_config("churn", MANUAL)
    arn = given_package(serving_cloud, approval="Approved")
    result = approve("approved_by_hand.json", arn)
    assert not result["started"] and "no selfheal run registered" in result["reason"]


def test_a_malformed_event_is_refused(load_handler, serving_env, lambda_context):
    # Given an event that is not a Model Package State Change; then it fails (EventBridge retries, then the DLQ)
    event = load_event("approval", "approved_by_hand.json") | {"detail-type": "SageMaker Endpoint State Change"}
    with pytest.raises(Exception, match="detail-type"):
        load_handler("approval").lambda_handler(event, lambda_context)
