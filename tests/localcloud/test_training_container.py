"""A training job's container, as the XGBoost container's script-mode toolkit starts it: the code is found
where sagemaker_program and sagemaker_submit_directory say, fetched by the toolkit's own code, and under network
isolation an s3:// submit directory fails the job as it fails on AWS (no credentials, no route)."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from selfheal_bench.fixtures.containers import BUCKET, tarball

# A user module that records what the container gave it, where a test can read it: the model it saves.
RECORDER = """
import json, os, sys
from pathlib import Path
from helper import ANSWER  # a sibling module of the source directory
seen = {"argv": sys.argv[1:], "name": __name__, "file": __file__, "cwd": os.getcwd(), "answer": ANSWER,
        "env": {k: v for k, v in os.environ.items() if k.startswith(("SM_", "AWS_", "TRAINING_JOB_"))}}
Path(os.environ["SM_MODEL_DIR"], "seen.json").write_text(json.dumps(seen))
"""
SOURCEDIR = {"train.py": RECORDER, "helper.py": "ANSWER = 42\n"}
CODE_CHANNEL = "/opt/ml/input/data/code/sourcedir.tar.gz"


def training_request(name: str, submit_directory: str, isolated: bool = True) -> dict[str, Any]:
    """A CreateTrainingJob request in script mode, hyperparameters JSON-encoded as the SageMaker SDK sends them."""
    return {
        "TrainingJobName": name,
        "RoleArn": "arn:aws:iam::123456789012:role/sagemaker",
        "AlgorithmSpecification": {"TrainingImage": "local/sagemaker-xgboost:3.0-5", "TrainingInputMode": "File"},
        "HyperParameters": {"sagemaker_program": '"train.py"',
                            "sagemaker_submit_directory": json.dumps(submit_directory),
                            "num_round": "3", "objective": '"binary:logistic"'},
        "InputDataConfig": [{"ChannelName": "code", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/code/sourcedir.tar.gz"}}}],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/output"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        "EnableNetworkIsolation": isolated,
    }


def saved(s3: Any, job: Any) -> dict[str, Any]:
    body = s3.get_object(Bucket=BUCKET, Key=job.model_artifacts.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return json.loads(tar.extractfile("seen.json").read())  # type: ignore[union-attr]


def test_an_isolated_job_runs_the_program_from_the_code_channel_with_the_toolkits_arguments(s3, run_job):
    # Given the source directory as the `code` channel, and sagemaker_submit_directory naming it in the container
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball(SOURCEDIR))
    # When the network-isolated job runs
    job = run_job("training", training_request("from-channel", CODE_CHANNEL))
    # Then it completes, having run train.py as the toolkit runs it (python -m, in /opt/ml/code, siblings importable)
    assert job.status == "Completed", job.failure_reason
    seen = saved(s3, job)
    assert (seen["name"], seen["answer"]) == ("__main__", 42)
    assert seen["file"].endswith("/opt_ml/code/train.py") and seen["cwd"].endswith("/opt_ml/code")
    # with the user hyperparameters decoded into arguments, sagemaker_* ones left out
    assert seen["argv"] == ["--num_round", "3", "--objective", "binary:logistic"]
    # and the toolkit's own SM_* variables
    assert json.loads(seen["env"]["SM_HPS"]) == {"num_round": 3, "objective": "binary:logistic"}
    assert seen["env"]["SM_CHANNEL_CODE"].endswith("/opt_ml/input/data/code")
    assert seen["env"]["SM_MODULE_NAME"] == "train" and seen["env"]["SM_MODEL_DIR"].endswith("/opt_ml/model")
    # and what SageMaker itself tells a container: its region and job name, and no credentials
    assert {k: v for k, v in seen["env"].items() if k.startswith(("AWS_REGION", "TRAINING_JOB_", "AWS_ACCESS"))} == {
        "AWS_REGION": "us-east-1", "TRAINING_JOB_NAME": "from-channel"}


def test_an_isolated_job_cannot_fetch_its_code_from_s3_and_fails_with_the_toolkits_error(s3, run_job):
    # Given the code in S3 and sagemaker_submit_directory pointing there, as the SDK does without isolation
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball(SOURCEDIR))
    # When the job runs network-isolated
    job = run_job("training", training_request("from-s3-isolated", f"s3://{BUCKET}/code/sourcedir.tar.gz"))
    # Then the toolkit's download has no credentials, and the job fails with its message, as on AWS: the
    # FailureReason is the failure file's first 1024 characters, the whole message is in the job's log
    assert job.status == "Failed"
    assert job.failure_reason.startswith("AlgorithmError: framework error: \nTraceback")
    assert len(job.failure_reason) <= len("AlgorithmError: ") + 1024
    log = job.log().read_text()
    assert "botocore.exceptions.NoCredentialsError: Unable to locate credentials" in log


def test_without_isolation_the_container_fetches_its_code_from_s3(s3, run_job):
    # Given the code in S3 and sagemaker_submit_directory pointing there
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball(SOURCEDIR))
    # When the job runs with network access
    job = run_job("training", training_request("from-s3", f"s3://{BUCKET}/code/sourcedir.tar.gz", isolated=False))
    # Then the container fetched it and ran it
    assert job.status == "Completed", job.failure_reason
    assert saved(s3, job)["answer"] == 42


def test_code_is_found_only_where_sagemaker_submit_directory_points(s3, run_job):
    # Given the code channel, but sagemaker_submit_directory naming another channel's path
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball(SOURCEDIR))
    # When the job runs
    job = run_job("training", training_request("wrong-path", "/opt/ml/input/data/src/sourcedir.tar.gz"))
    # Then the toolkit does not find it, and the job fails with its error
    assert job.status == "Failed" and job.failure_reason.startswith("AlgorithmError: framework error:")
    last_line = job.log().read_text().strip().splitlines()[-1]
    assert last_line.startswith("[Errno 2] No such file or directory: ")
    assert last_line.endswith("/opt_ml/input/data/src/sourcedir.tar.gz'")


def test_without_a_program_the_container_would_run_its_built_in_algorithm_which_is_refused(s3, run_job):
    # Given a script-mode request without sagemaker_program (the XGBoost container's algorithm mode)
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball(SOURCEDIR))
    request = training_request("no-program", CODE_CHANNEL)
    del request["HyperParameters"]["sagemaker_program"]
    # When it runs; Then the local cloud refuses rather than run something else than the container would
    job = run_job("training", request)
    assert job.status == "Failed" and "only script mode is supported locally" in job.failure_reason
