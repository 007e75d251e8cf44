"""Fixtures for SageMaker's containers on the local cloud: moto's S3 with a bucket, and the job and hosting services
on it, so a SageMaker job or endpoint runs exactly as the state machines would start it, without a whole local cloud.
(tests/localcloud holds the local cloud to the containers' contract; tests/ml serves the product's model in it.)"""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from selfheal.localcloud.faults import Faults
from selfheal.localcloud.hosting import Endpoint, HostingService
from selfheal.localcloud.sagemaker_jobs import Job, JobService

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "container-contract"
JOB_TIMEOUT = 120  # seconds: a bound far above a job's ~2 s here


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def jobs(s3: Any, tmp_path: Path) -> Iterator[JobService]:
    service = JobService(tmp_path / "cloud", Faults(), REGION, ACCOUNT)
    yield service
    service.shutdown()


def tarball(files: dict[str, str]) -> bytes:
    """A gzipped tar of text files, as the SageMaker SDK packs a source directory."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


@pytest.fixture
def run_job(jobs: JobService) -> Callable[[str, dict[str, Any]], Job]:
    """run_job(kind, request) -> the job, once it ended (bounded)."""

    def _run(kind: str, request: dict[str, Any]) -> Job:
        job = jobs.create(kind, request)
        deadline = time.monotonic() + JOB_TIMEOUT
        while job.status not in {"Completed", "Failed", "Stopped"}:
            assert time.monotonic() < deadline, f"{job.name} still {job.status} after {JOB_TIMEOUT}s"
            time.sleep(0.05)
        return job

    return _run


@pytest.fixture
def hosting(s3: Any, tmp_path: Path) -> Iterator[HostingService]:
    service = HostingService(tmp_path / "cloud", Faults(), REGION, ACCOUNT, time_scale=0.001)
    yield service
    service.shutdown()


@pytest.fixture
def serve(s3: Any, hosting: HostingService) -> Callable[..., Endpoint]:
    """serve(files, environment, isolated=True, name="m") -> the endpoint serving model.tar.gz of `files`, once
    it is InService or Failed (bounded)."""

    def _serve(files: dict[str, str], environment: dict[str, str], isolated: bool = True, name: str = "m") -> Endpoint:
        s3.put_object(Bucket=BUCKET, Key=f"models/{name}/model.tar.gz", Body=tarball(files))
        hosting.create_model({"ModelName": name, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/sagemaker",
                              "PrimaryContainer": {"Image": "local/sagemaker-xgboost:3.0-5",
                                                   "ModelDataUrl": f"s3://{BUCKET}/models/{name}/model.tar.gz",
                                                   "Environment": environment},
                              "EnableNetworkIsolation": isolated})
        hosting.create_endpoint_config({"EndpointConfigName": name, "ProductionVariants": [
            {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"}]})
        hosting.create_endpoint({"EndpointName": name, "EndpointConfigName": name})
        endpoint = hosting.endpoints[name]
        deadline = time.monotonic() + JOB_TIMEOUT
        while endpoint.status == "Creating":
            assert time.monotonic() < deadline, f"endpoint {name} still Creating after {JOB_TIMEOUT}s"
            time.sleep(0.05)
        return endpoint

    return _serve
