"""The local cloud's faults themselves: each kind fires where AWS would fail and has the effect AWS
documents, under AWS's error name; a fault that cannot fire is refused rather than silently never injected."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.exceptions import ServiceException
from selfheal_bench.localcloud.audit import CallAudit
from selfheal_bench.localcloud.clock import Clock
from selfheal_bench.localcloud.endpoint_metrics import FleetMetrics, evaluate
from selfheal_bench.localcloud.faults import KINDS, Faults, UnknownFault, describe
from selfheal_bench.localcloud.hosting import HostingService
from selfheal_bench.localcloud.lambdas import FunctionError, FunctionRouter, FunctionSpec, isolate_environments
from selfheal_bench.localcloud.sagemaker_jobs import JobService
from selfheal_bench.localcloud.sfn_integrations import sagemaker_error_name

REGION, ACCOUNT = "us-east-1", "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/sagemaker"
ENDPOINT_REQUEST = {"EndpointName": "selfheal-churn", "EndpointConfigName": "selfheal-churn-1"}
JOB_REQUESTS = {
    "processing": {"ProcessingJobName": "p-0", "RoleArn": ROLE,
                   "AppSpecification": {"ImageUri": "local/sklearn", "ContainerEntrypoint": ["python3", "-c", "0"]},
                   "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                             "VolumeSizeInGB": 1}},
                   "StoppingCondition": {"MaxRuntimeInSeconds": 1}},
    "training": {"TrainingJobName": "t-0", "RoleArn": ROLE, "OutputDataConfig": {"S3OutputPath": "s3://data/model"},
                 "AlgorithmSpecification": {"TrainingImage": "local/xgboost", "TrainingInputMode": "File"},
                 "HyperParameters": {"sagemaker_program": '"train.py"',
                                     "sagemaker_submit_directory": '"s3://data/code/sourcedir.tar.gz"'},
                 "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
                 "StoppingCondition": {"MaxRuntimeInSeconds": 1}},
}
# The endpoint kinds need a model that serves: the serving story runs each one on a real endpoint and
# requires that it fired (tests/reliability/test_serving_story.py, FAILURES "unhealthy" and "model_errors");
# the lifecycle kinds are checked with their effect in tests/reliability/test_endpoint_lifecycle.py.
ON_A_REAL_ENDPOINT = {("endpoint:unhealthy", "fail"), ("endpoint:model_errors", "fail"),
                      ("endpoint:slow_start", "slow"), ("endpoint:update_failed", "fail"),
                      ("endpoint:rollback_failed", "fail")}
LAMBDA_KINDS = sorted(KINDS["lambda:"])
# What each Lambda fault does: (the error Lambda reports, its HTTP status, whether the handler ran).
LAMBDA_EFFECTS = {"throttle": ("Lambda.TooManyRequestsException", 429, False),
                  "service": ("Lambda.ServiceException", 500, False),
                  "timeout": ("Sandbox.Timedout", 200, False),
                  "raise": ("RuntimeError", 200, False),
                  "crash_after": ("Lambda.Unknown", 200, True)}
JOB_EFFECTS = {"capacity": ("Failed", "CapacityError"), "algorithm": ("Failed", "AlgorithmError"),
               "hang": ("Stopped", "MaxRuntimeExceeded")}


def catalogue_tested_here() -> set[tuple[str, str]]:
    operations = ("CreateProcessingJob", "CreateTrainingJob", "CreateEndpoint", "UpdateEndpoint")
    return ({(f"sagemaker:{op}", kind) for op in operations for kind in ("throttle", "limit")}
            | {(f"job:{job}", kind) for job in JOB_REQUESTS for kind in JOB_EFFECTS}
            | {("lambda:", kind) for kind in LAMBDA_EFFECTS} | ON_A_REAL_ENDPOINT)


def test_every_kind_of_fault_has_its_effect_checked():
    known = {(target, kind) for target, kinds in KINDS.items() for kind in kinds}
    assert known == catalogue_tested_here()


@pytest.mark.parametrize(("target", "kind"), [("job:training", "capasity"), ("lambda:IngestFunction", "explode"),
                                              ("lambda:IngestFuncton", "throttle"), ("lambda:", "throttle"),
                                              ("s3:GetObject", "SlowDown"), ("api:s3", "SlowDown"),
                                              ("api:s3:GetObject", "slow down")])
def test_a_fault_that_cannot_fire_is_refused(target, kind):
    with pytest.raises(UnknownFault):
        Faults().add(target, kind)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="data")
        boto3.client("s3").put_object(Bucket="data", Key="code/sourcedir.tar.gz", Body=sourcedir())
        yield


def sourcedir() -> bytes:
    """A script-mode source directory with a train.py that would train nothing."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        script = b"print('training')\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["throttle", "limit"])
@pytest.mark.parametrize("operation", ["CreateEndpoint", "UpdateEndpoint", "CreateProcessingJob",
                                       "CreateTrainingJob"])
def test_a_sagemaker_api_fault_refuses_the_call_with_the_documented_code(aws, tmp_path: Path, operation, kind):
    # Given the fault on the operation
    faults = Faults()
    fault = faults.add(f"sagemaker:{operation}", kind)
    jobs = JobService(tmp_path, faults, REGION, ACCOUNT)
    hosting = HostingService(tmp_path, faults, REGION, ACCOUNT, Clock(scale=0.001))
    calls = {"CreateEndpoint": lambda: hosting.create_endpoint(ENDPOINT_REQUEST),
             "UpdateEndpoint": lambda: hosting.update_endpoint(ENDPOINT_REQUEST),
             "CreateProcessingJob": lambda: jobs.create("processing", JOB_REQUESTS["processing"]),
             "CreateTrainingJob": lambda: jobs.create("training", JOB_REQUESTS["training"])}
    # When the operation is called; Then it fired and SageMaker refused with the documented error code
    with pytest.raises(ServiceException) as refused:
        calls[operation]()
    jobs.shutdown()
    assert fault.fired == 1
    assert refused.value.code == describe(f"sagemaker:{operation}", kind)
    # And a Step Functions task calling it fails under the name AWS gives that code
    expected = {"throttle": "SageMaker.AmazonSageMakerException", "limit": "SageMaker.ResourceLimitExceededException"}
    assert sagemaker_error_name(refused.value.code) == expected[kind]


@pytest.mark.parametrize("kind", sorted(JOB_EFFECTS))
@pytest.mark.parametrize("job", sorted(JOB_REQUESTS))
def test_a_job_fault_ends_the_job_as_sagemaker_reports_it(aws, tmp_path: Path, job, kind):
    # Given the fault on the kind of job
    faults = Faults()
    fault = faults.add(f"job:{job}", kind)
    jobs = JobService(tmp_path, faults, REGION, ACCOUNT)
    # When a job runs (a hung one is stopped at its MaxRuntimeInSeconds of 1 s)
    started = jobs.create(job, JOB_REQUESTS[job])
    deadline = time.monotonic() + 60
    while started.status == "InProgress":
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.05)
    jobs.shutdown()
    # Then the fault fired, and Describe* says what SageMaker says
    status, reason = JOB_EFFECTS[kind]
    described = started.describe()
    assert fault.fired == 1
    assert described["ProcessingJobStatus" if job == "processing" else "TrainingJobStatus"] == status
    assert described["FailureReason"].startswith(reason)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[FunctionRouter]:
    """A function that records each event it handles."""
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text("done = []\ndef lambda_handler(event, context):\n    done.append(event)\n"
                                 "    return {'ok': True}\n")
    undo = isolate_environments()
    router = FunctionRouter(tmp_path / "logs", Faults(functions={"Fn"}))
    router.add(FunctionSpec("Fn", "fn", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn", code,
                            "app.lambda_handler", {}))
    try:
        yield router
    finally:
        router.close()
        undo()


@pytest.mark.parametrize("kind", LAMBDA_KINDS)
def test_a_lambda_fault_fails_the_invocation_as_lambda_reports_it(router, kind):
    # Given the fault on the function
    fault = router._faults.add("lambda:Fn", kind)
    # When it is invoked; Then it fired, and the caller sees the error and status Lambda reports
    with pytest.raises(FunctionError) as raised:
        router.invoke("Fn", {"n": 1})
    error_type, status, handled = LAMBDA_EFFECTS[kind]
    assert fault.fired == 1
    assert (raised.value.error_type, raised.value.status) == (error_type, status)
    if kind != "raise":  # the handler's own error type
        assert describe("lambda:Fn", kind, {"Fn"}).startswith(error_type)
    # And the handler's side effects happened only for a function that died after them
    assert router.module("Fn").done == ([{"n": 1}] if handled else [])
    # And the next invocation runs normally
    assert router.invoke("Fn", {"n": 2}) == {"ok": True}


@pytest.mark.parametrize(("code", "status"), [("ProvisionedThroughputExceededException", 400), ("SlowDown", 503)])
def test_an_api_fault_refuses_that_call_with_that_code(aws, code, status):
    # Given the fault on one operation of one service
    faults = Faults()
    fault = faults.add("api:s3:ListObjectsV2", code)
    undo = CallAudit(faults).patch()
    try:
        s3 = boto3.client("s3")
        s3.list_buckets()  # another operation: untouched
        # When the operation is called; Then it fired, with the code and the HTTP status AWS answers
        with pytest.raises(ClientError) as refused:
            s3.list_objects_v2(Bucket="data")
    finally:
        undo()
    assert fault.fired == 1
    assert refused.value.response["Error"]["Code"] == code
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


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
