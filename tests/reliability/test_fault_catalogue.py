"""The local cloud's faults themselves: each is one AWS documents, raised under AWS's error name, and a
fault that cannot fire is refused rather than silently never injected."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.localcloud.clock import Clock
from selfheal.localcloud.endpoint_metrics import FleetMetrics, evaluate
from selfheal.localcloud.faults import KINDS, Faults, UnknownFault, describe
from selfheal.localcloud.hosting import HostingService
from selfheal.localcloud.lambdas import FunctionError, FunctionRouter, FunctionSpec

ENDPOINT_REQUEST = {"EndpointName": "selfheal-churn", "EndpointConfigName": "selfheal-churn-1"}


@pytest.mark.parametrize(("target", "kind"), [("job:training", "capasity"), ("lambda:IngestFunction", "explode"),
                                              ("s3:GetObject", "SlowDown"), ("api:s3", "SlowDown"),
                                              ("api:s3:GetObject", "slow down")])
def test_a_fault_that_cannot_fire_is_refused(target, kind):
    with pytest.raises(UnknownFault):
        Faults().add(target, kind)


def test_every_known_fault_says_what_aws_reports():
    for target, kinds in KINDS.items():
        for kind, reported in kinds.items():
            assert describe(target + ("IngestFunction" if target.endswith(":") else ""), kind) == reported
    assert describe("api:dynamodb:PutItem", "ProvisionedThroughputExceededException") == (
        "ProvisionedThroughputExceededException")


@pytest.mark.parametrize(("kind", "code"), [("throttle", "ThrottlingException"), ("limit", "ResourceLimitExceeded")])
@pytest.mark.parametrize("operation", ["CreateEndpoint", "UpdateEndpoint"])
def test_hosting_apis_refuse_with_aws_error_codes(tmp_path: Path, operation, kind, code):
    faults = Faults()
    faults.add(f"sagemaker:{operation}", kind)
    hosting = HostingService(tmp_path, faults, "us-east-1", "123456789012", Clock(scale=0.001))
    with pytest.raises(Exception) as raised:
        getattr(hosting, "create_endpoint" if operation == "CreateEndpoint" else "update_endpoint")(ENDPOINT_REQUEST)
    assert raised.value.code == code


def test_a_function_that_crashes_after_its_side_effects_is_reported_as_lambda_reports_it(tmp_path: Path):
    # Given a handler that records what it did, and a crash_after fault
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text("done = []\ndef lambda_handler(event, context):\n    done.append(event)\n"
                                 "    return {'ok': True}\n")
    faults = Faults()
    faults.add("lambda:Fn", "crash_after")
    router = FunctionRouter(tmp_path / "logs", faults)
    router.add(FunctionSpec("Fn", "fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", code, "app.lambda_handler",
                            {}))
    # When it is invoked; Then the side effect happened, and the caller sees Lambda.Unknown, not the result
    with pytest.raises(FunctionError) as raised:
        router.invoke("Fn", {"n": 1})
    assert raised.value.error_type == "Lambda.Unknown"
    assert router.module("Fn").done == [{"n": 1}]
    # And the retry runs normally
    assert router.invoke("Fn", {"n": 1}) == {"ok": True}
    router.close()


def test_a_request_still_in_flight_is_no_latency_data_point():
    # Given a canary that has taken a request whose answer has not come back (no latency recorded yet)
    fleets = FleetMetrics(Clock(scale=0.001))
    fleets.setdefault("new/AllTraffic").invocations += 1
    latency = {"AlarmName": "slow", "Namespace": "AWS/SageMaker", "MetricName": "ModelLatency", "Statistic": "Average",
               "Dimensions": [{"Name": "EndpointName", "Value": "selfheal-churn"},
                              {"Name": "VariantName", "Value": "AllTraffic"}],
               "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0, "ComparisonOperator": "GreaterThanThreshold"}
    # When the latency alarm is evaluated; Then there is no data point yet (the update goes on, it does not crash)
    evaluation = evaluate(latency, "selfheal-churn", fleets, now=30)
    assert evaluation.values == [None] and not evaluation.in_alarm
