"""Fixtures for SageMaker's containers on the local cloud: moto's S3 with a bucket, and the job and hosting services
on it, so a SageMaker job or endpoint runs exactly as the state machines would start it, without a whole local cloud.
(tests/localcloud holds the local cloud to the containers' contract; tests/ml serves the product's model in it.)"""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from selfheal.localcloud.clock import Clock
from selfheal.localcloud.faults import Faults
from selfheal.localcloud.hosting import Endpoint, HostingService
from selfheal.localcloud.sagemaker_jobs import Job, JobService

REGION = "us-east-1"
ACCOUNT = "123456789012"
BUCKET = "container-contract"
JOB_TIMEOUT = 120  # seconds: a bound far above a job's ~2 s here


@contextmanager
def aws_bucket() -> Iterator[Any]:
    """moto's AWS with fake credentials and one S3 bucket; yields the S3 client."""
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                           "AWS_DEFAULT_REGION": REGION}.items():
            env.setenv(key, value)
        with mock_aws():
            client = boto3.client("s3", region_name=REGION)
            client.create_bucket(Bucket=BUCKET)
            yield client


@pytest.fixture
def s3() -> Iterator[Any]:
    with aws_bucket() as client:
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
    service = HostingService(tmp_path / "cloud", Faults(), REGION, ACCOUNT, Clock(scale=0.001))
    yield service
    service.shutdown()


@pytest.fixture(scope="module")
def module_hosting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, HostingService]]:
    """(S3 client, hosting service) shared by a module's tests: one endpoint started once serves them all."""
    with aws_bucket() as client:
        service = HostingService(tmp_path_factory.mktemp("cloud"), Faults(), REGION, ACCOUNT, Clock(scale=0.001))
        yield client, service
        service.shutdown()


def serve_model(s3: Any, hosting: HostingService, model: bytes | dict[str, str], environment: dict[str, str],
                isolated: bool = True, name: str = "m") -> Endpoint:
    """The endpoint serving `model` (model.tar.gz's bytes, or its files as text), once it is InService or Failed
    (bounded)."""
    body = model if isinstance(model, bytes) else tarball(model)
    s3.put_object(Bucket=BUCKET, Key=f"models/{name}/model.tar.gz", Body=body)
    hosting.create_model({"ModelName": name, "ExecutionRoleArn": "arn:aws:iam::123456789012:role/sagemaker",
                          "PrimaryContainer": {"Image": "local/sagemaker-xgboost:3.0-5",
                                               "ModelDataUrl": f"s3://{BUCKET}/models/{name}/model.tar.gz",
                                               "Environment": environment},
                          "EnableNetworkIsolation": isolated})
    hosting.create_endpoint_config({"EndpointConfigName": name, "ProductionVariants": [
        {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]})
    hosting.create_endpoint({"EndpointName": name, "EndpointConfigName": name})
    endpoint = hosting.endpoints[name]
    deadline = time.monotonic() + JOB_TIMEOUT
    while endpoint.status == "Creating":
        assert time.monotonic() < deadline, f"endpoint {name} still Creating after {JOB_TIMEOUT}s"
        time.sleep(0.05)
    return endpoint


@pytest.fixture
def serve(s3: Any, hosting: HostingService) -> Callable[..., Endpoint]:
    """serve(model, environment, isolated=True, name="m"): serve_model on this test's S3 and hosting service."""
    return partial(serve_model, s3, hosting)
