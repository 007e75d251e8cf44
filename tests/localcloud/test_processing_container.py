"""A processing job's container: SageMaker puts its S3 inputs in /opt/ml/processing and uploads its outputs,
network isolation or not; the container itself has no route to AWS, whatever this machine's AWS setup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from selfheal_bench.fixtures import containers
from selfheal_bench.fixtures.containers import BUCKET

# Reads its input, then tries S3 with whatever credentials it can find, and says what happened.
PROBE = """
import json, os, sys
import boto3, botocore.exceptions
try:
    boto3.client("s3").list_buckets()
    outcome = "reached S3"
except botocore.exceptions.NoCredentialsError:
    outcome = "no credentials"
except Exception as error:
    outcome = type(error).__name__
source, target = sys.argv[1:]
with open(target, "w") as out:
    json.dump({"input": open(source).read(), "outcome": outcome, "region": os.environ.get("AWS_REGION")}, out)
"""


def processing_request(name: str, isolated: bool) -> dict[str, Any]:
    arguments = ["/opt/ml/processing/input/data/in.txt", "/opt/ml/processing/output/probe.json"]
    request = containers.processing_request(name, ["python3", "-c", PROBE], arguments, "data", "in/in.txt",
                                            "/opt/ml/processing/input/data")
    return request | {"NetworkConfig": {"EnableNetworkIsolation": isolated}}


@pytest.fixture
def machine_with_aws_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as a developer's: credentials in ~/.aws (the environment's are the s3 fixture's)."""
    home = tmp_path / "developer"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_access_key_id = AKIADEVELOPER\n"
                                               "aws_secret_access_key = developer-secret\n")
    (home / ".aws" / "config").write_text("[default]\nregion = eu-west-1\n")
    monkeypatch.setenv("HOME", str(home))


@pytest.mark.parametrize("isolated", [True, False], ids=["isolated", "not-isolated"])
def test_a_processing_container_gets_its_inputs_but_no_route_to_aws(s3, run_job, machine_with_aws_access, isolated):
    # Given an input in S3, and a machine whose environment and ~/.aws hold credentials
    s3.put_object(Bucket=BUCKET, Key="in/in.txt", Body=b"rows")
    # When a processing job runs a script that reads its input and then tries S3 itself
    job = run_job("processing", processing_request(f"probe-{isolated}".lower(), isolated))
    # Then SageMaker's download gave it the input and its output was uploaded,
    assert job.status == "Completed", job.failure_reason
    key = f"out/probe-{isolated}/probe.json".lower()
    probe = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert probe["input"] == "rows"
    # but the container found no credentials to call S3 with (stricter than AWS without isolation, where the
    # container has the role's credentials: here the local cloud's S3 is out of any container's reach)
    assert probe["outcome"] == "no credentials"
    # and it knows its region, as SageMaker tells it
    assert probe["region"] == "us-east-1"
