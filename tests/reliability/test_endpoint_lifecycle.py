"""The local cloud's endpoints follow SageMaker's documented lifecycle (botocore's EndpointStatus, the
UpdateEndpoint and deployment guardrails guides) and refuse what SageMaker refuses."""

from __future__ import annotations

import pytest
from selfheal_bench.fixtures.hosting import ENDPOINT, blue_green, update_under_traffic
from selfheal_bench.localcloud.sagemaker_jobs import ValidationException


def update(hosting, config: str, deployment: dict | None = None) -> None:
    hosting.service.update_endpoint({"EndpointName": ENDPOINT, "EndpointConfigName": config,
                                     **({"DeploymentConfig": deployment} if deployment else {})})


def test_a_failed_endpoint_accepts_only_delete_and_its_name_is_free_once_it_is_gone(hosting):
    # Given an endpoint whose model failed its health check on creation
    old, new = hosting.config("old"), hosting.config("new")
    hosting.faults.add("endpoint:unhealthy", "fail")
    hosting.service.create_endpoint({"EndpointName": ENDPOINT, "EndpointConfigName": old})
    failed = hosting.wait_while("Creating")
    assert failed["EndpointStatus"] == "Failed" and failed["FailureReason"]
    # When it is updated; Then SageMaker refuses: DeleteEndpoint is the only operation a Failed endpoint accepts
    with pytest.raises(ValidationException, match="DeleteEndpoint is the only operation"):
        update(hosting, new)
    # When it is deleted; Then it is Deleting, its name still taken, until it is gone
    hosting.service.delete_endpoint(ENDPOINT)
    assert hosting.status()["EndpointStatus"] == "Deleting"
    with pytest.raises(ValidationException, match="already existing endpoint"):
        hosting.service.create_endpoint({"EndpointName": ENDPOINT, "EndpointConfigName": new})
    with pytest.raises(ValidationException, match="Could not find endpoint"):
        hosting.wait_while("Deleting")
    # and then the name can serve again
    hosting.serving(new)


def test_an_update_leaves_in_progress_endpoints_alone(hosting):
    hosting.serving(hosting.config("old"))
    update(hosting, hosting.config("new"))
    assert hosting.status()["EndpointStatus"] == "Updating"
    with pytest.raises(ValidationException, match="in-progress"):
        update(hosting, "old")
    with pytest.raises(ValidationException, match="in-progress"):
        hosting.service.delete_endpoint(ENDPOINT)
    assert hosting.wait_while("Updating")["EndpointConfigName"] == "new"


def test_a_blue_green_update_that_outlasts_its_execution_timeout_reverts_to_the_old_fleet(hosting):
    # Given an endpoint serving, and new fleets that take 15 minutes to launch
    hosting.serving(hosting.config("old"))
    hosting.faults.add("endpoint:slow_start", "slow", times=None)
    # When an update allows the deployment 10 minutes
    described, answers = update_under_traffic(hosting, hosting.config("new"),
                                              blue_green([], bake=0, timeout=600), lambda n: "1,2")
    # Then SageMaker gives up and the old fleet keeps serving, the reason said; every request was answered
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "old")
    assert "MaximumExecutionTimeoutInSeconds" in described["FailureReason"]
    assert answers and set(answers) == {200}
    # and the same update with time for the fleet to launch completes
    described, _ = update_under_traffic(hosting, "new", blue_green([], bake=0, timeout=1800), lambda n: "1,2")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "new")
    assert "FailureReason" not in described


def test_a_rollback_that_fails_leaves_update_rollback_failed_which_only_delete_gets_out_of(hosting):
    # Given an update whose new model fails its health check, and a rollback that fails too
    hosting.serving(hosting.config("old"))
    hosting.faults.add("endpoint:unhealthy", "fail")
    hosting.faults.add("endpoint:rollback_failed", "fail")
    update(hosting, hosting.config("new"), blue_green([]))
    # Then the endpoint is UpdateRollbackFailed, with the reason
    described = hosting.wait_while("Updating")
    assert described["EndpointStatus"] == "UpdateRollbackFailed" and "rollback failed" in described["FailureReason"]
    # and (stricter than documented) no update starts from it; a delete does
    with pytest.raises(ValidationException):
        update(hosting, "old")
    hosting.service.delete_endpoint(ENDPOINT)
    assert hosting.status()["EndpointStatus"] == "Deleting"


def test_an_update_that_fails_can_leave_the_endpoint_failed(hosting):
    hosting.serving(hosting.config("old"))
    hosting.faults.add("endpoint:update_failed", "fail")
    update(hosting, hosting.config("new"), blue_green([]))
    described = hosting.wait_while("Updating")
    assert described["EndpointStatus"] == "Failed" and described["FailureReason"]
    assert hosting.invoke("1,2") == 400  # not InService: the API refuses the request


@pytest.mark.parametrize(("deployment", "refusal"), [
    (blue_green([], bake=600, timeout=600), "MaximumExecutionTimeoutInSeconds must be larger"),
    ({"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 60}}}},
     "CanarySize"),
    ({"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "CANARY", "WaitIntervalInSeconds": 60, "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 2}}}},
     "CanarySize"),
    ({"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {
        "Type": "LINEAR", "WaitIntervalInSeconds": 60, "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5}}}},
     "LinearStepSize"),
    (blue_green([{"AlarmName": "no-such-alarm"}]), "do not exist"),
])
def test_an_update_sagemaker_would_refuse_is_refused(hosting, deployment, refusal):
    # Given an endpoint serving on two instances
    hosting.serving(hosting.config("old", instances=2))
    # When an update asks for what SageMaker refuses; Then it is refused, and the endpoint is untouched
    with pytest.raises(ValidationException, match=refusal):
        update(hosting, hosting.config("new", instances=2), deployment)
    assert hosting.status()["EndpointStatus"] == "InService"


def test_a_blue_green_update_keeps_the_variant_names(hosting):
    hosting.serving(hosting.config("old"))
    hosting.config("renamed", variant="Other")
    with pytest.raises(ValidationException, match="variant names"):
        update(hosting, "renamed", blue_green([]))
