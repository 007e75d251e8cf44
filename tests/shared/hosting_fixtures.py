"""A local cloud's SageMaker hosting on its own, in moto, with toy models whose answers a test controls:
a request "slow" takes 200 ms, "fail" raises (a server error) unless the model is a fixed one, anything
else is answered at once. For testing the endpoint lifecycle and the rollback alarms without training."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from selfheal.localcloud.clock import Clock
from selfheal.localcloud.faults import Faults
from selfheal.localcloud.hosting import HostingService, patch_moto_hosting
from selfheal.localcloud.template import ACCOUNT_ID, REGION

ENDPOINT, BUCKET = "selfheal-churn", "models"
SLOW_LOAD_SECONDS = 2.0
TOY_MODEL = '''
import time

FAILS = {fails}
LOAD_SECONDS = {load_seconds}

def model_fn(model_dir):
    time.sleep(LOAD_SECONDS)
    return "toy"

def input_fn(body, content_type):
    return body

def predict_fn(data, model):
    if data == "slow":
        time.sleep(0.2)
    if data == "fail" and FAILS:
        raise RuntimeError("the toy model failed")
    return "1"

def output_fn(prediction, accept):
    return prediction
'''


def toy_tarball(fails: bool, load_seconds: float = 0.0) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("inference.py", "code/inference.py"):  # at the root, and where the SDK packs code
            data = TOY_MODEL.replace("{fails}", str(fails)).replace("{load_seconds}", str(load_seconds)).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Hosting:
    service: HostingService
    faults: Faults
    clock: Clock

    def config(self, name: str, instances: int = 1, variant: str = "AllTraffic", model: str = "model") -> str:
        """A model and an endpoint config serving it on one variant. Models: "model"; "fixed", which
        answers "fail" too; "heavy", which takes SLOW_LOAD_SECONDS of real time to load."""
        data = f"s3://{BUCKET}/{model}.tar.gz"
        env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}
        container = {"Image": "local/toy", "ModelDataUrl": data, "Environment": env}
        self.service.create_model({"ModelName": name, "ExecutionRoleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/sagemaker",
                                   "PrimaryContainer": container})
        self.service.create_endpoint_config({"EndpointConfigName": name, "ProductionVariants": [
            {"VariantName": variant, "ModelName": name, "InstanceType": "ml.m5.large",
             "InitialInstanceCount": instances}]})
        return name

    def status(self) -> dict[str, Any]:
        return self.service.describe_endpoint(ENDPOINT)

    def wait_while(self, *statuses: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (described := self.status())["EndpointStatus"] in statuses:
            assert time.monotonic() < deadline, f"still {described['EndpointStatus']} after {timeout}s"
            time.sleep(0.01)
        return described

    def serving(self, config: str) -> dict[str, Any]:
        """Create the endpoint on `config` and wait for it to serve."""
        self.service.create_endpoint({"EndpointName": ENDPOINT, "EndpointConfigName": config})
        described = self.wait_while("Creating")
        assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", config)
        return described

    def invoke(self, body: str) -> int:
        """The status a client sees: 200, or the model's error status."""
        try:
            self.service.invoke(ENDPOINT, body.encode(), "text/csv", "text/csv")
        except Exception as error:  # ModelError or the API's ValidationException
            return getattr(error, "original_status_code", 400)
        return 200


@pytest.fixture
def hosting(tmp_path: Path) -> Iterator[Hosting]:
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        for key, body in (("model", toy_tarball(True)), ("fixed", toy_tarball(False)),
                          ("heavy", toy_tarball(True, SLOW_LOAD_SECONDS))):
            boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=f"{key}.tar.gz", Body=body)
        faults, clock = Faults(), Clock(scale=0.001)
        service = HostingService(tmp_path, faults, REGION, ACCOUNT_ID, clock)
        undo = patch_moto_hosting(service)
        try:
            yield Hosting(service, faults, clock)
        finally:
            undo()


def put_alarm(name: str, metric: str, statistic: str, threshold: float, dimensions: dict[str, str],
              namespace: str = "AWS/SageMaker", period: int = 60, periods: int = 1) -> dict[str, str]:
    """A metric alarm as an operator (or PrepareDeploy) puts one; returns its AutoRollbackConfiguration entry."""
    boto3.client("cloudwatch", region_name=REGION).put_metric_alarm(
        AlarmName=name, Namespace=namespace, MetricName=metric, Statistic=statistic, Threshold=threshold,
        ComparisonOperator="GreaterThanOrEqualToThreshold", Period=period, EvaluationPeriods=periods,
        TreatMissingData="notBreaching", Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()])
    return {"AlarmName": name}


def blue_green(alarms: list[dict[str, str]], bake: int = 600, timeout: int = 3600,
               routing: dict[str, Any] | None = None) -> dict[str, Any]:
    """A DeploymentConfig: all at once unless `routing` says otherwise, baked `bake` seconds under `alarms`."""
    routing = routing or {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    return {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": bake,
                                      "MaximumExecutionTimeoutInSeconds": timeout},
            **({"AutoRollbackConfiguration": {"Alarms": alarms}} if alarms else {})}


def update_under_traffic(hosting: Hosting, config: str, deployment: dict[str, Any],
                         body: Callable[[int], str]) -> tuple[dict[str, Any], list[int]]:
    """UpdateEndpoint while a client sends body(n) for its n-th request, until the update settles."""
    hosting.service.update_endpoint({"EndpointName": ENDPOINT, "EndpointConfigName": config,
                                     "DeploymentConfig": deployment})
    answers: list[int] = []
    deadline = time.monotonic() + 60
    while hosting.status()["EndpointStatus"] == "Updating":
        assert time.monotonic() < deadline, "the update never settled"
        answers.append(hosting.invoke(body(len(answers))))
    return hosting.status(), answers
