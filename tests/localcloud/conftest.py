"""Fixtures for the local cloud's own contracts: moto's S3 with a bucket, and the job service on it, so a
SageMaker job can be run exactly as a .sync task would start it, without a whole local cloud."""

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
