"""SageMaker processing and training jobs, run for real from ml/ under the container contract.

CreateProcessingJob and CreateTrainingJob are answered here instead of by moto's stubs (which complete
every job at once and drop most request fields): the request is validated against botocore's service
model, its S3 inputs are downloaded into a sandbox laid out like the container's /opt/ml, and the job runs
in subprocesses that see what the container would (container.py: no route to AWS). A processing job runs its
ContainerEntrypoint; a training job is started by the real script-mode toolkit (it finds and fetches the code
as the XGBoost container does), then its user module runs with the toolkit's arguments and SM_* variables.
Outputs go back to S3, and Describe* reports InProgress, then Completed, Failed or Stopped, with the
request's own fields, as SageMaker does.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.validate import ParamValidator
from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.responses import SageMakerResponse

from .container import ContainerStartFailed, Started, container_env, start_user_code
from .faults import Faults
from .instance_rules import volume_key_refusal

OPT_ML = "/opt/ml"
_TERMINAL = {"Completed", "Failed", "Stopped"}
CAPACITY_ERROR = (
    "CapacityError: Unable to provision requested ML compute capacity. "
    "Please retry using a different ML instance type."
)


class ValidationException(ServiceException):
    code = "ValidationException"


class ResourceInUse(ServiceException):
    code = "ResourceInUse"


class ThrottlingException(ServiceException):
    code = "ThrottlingException"


class ResourceLimitExceeded(ServiceException):
    code = "ResourceLimitExceeded"


_service_model = botocore.session.get_session().get_service_model("sagemaker")


def validate_request(operation: str, params: dict[str, Any]) -> None:
    """Fail as SageMaker would on a request that does not fit its API (moto's engine skips this)."""
    shape = _service_model.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise ValidationException(f"{operation}: {report.generate_report()}")
    refusal = volume_key_refusal(operation, params)
    if refusal:
        raise ValidationException(refusal)


@dataclass
class Job:
    kind: str  # "processing" | "training"
    name: str
    request: dict[str, Any]
    arn: str
    status: str = "InProgress"
    secondary_status: str = "Starting"
    failure_reason: str | None = None
    exit_message: str | None = None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    sandbox: Path | None = None
    compute_seconds: float = 0.0
    process: subprocess.Popen[bytes] | None = None
    stop_requested: bool = False

    def describe(self) -> dict[str, Any]:
        out = {k: v for k, v in self.request.items() if k != "Tags"}
        modified = self.ended or self.started or self.created
        if self.kind == "processing":
            out |= {"ProcessingJobArn": self.arn, "ProcessingJobStatus": self.status,
                    "CreationTime": self.created, "LastModifiedTime": modified}
            if self.started:
                out["ProcessingStartTime"] = self.started
            if self.ended:
                out["ProcessingEndTime"] = self.ended
            if self.exit_message:
                out["ExitMessage"] = self.exit_message
        else:
            out |= {"TrainingJobArn": self.arn, "TrainingJobStatus": self.status,
                    "SecondaryStatus": self.secondary_status, "CreationTime": self.created,
                    "LastModifiedTime": modified,
                    "ModelArtifacts": {"S3ModelArtifacts": self.model_artifacts}}
            if self.started:
                out["TrainingStartTime"] = self.started
            if self.ended:
                out["TrainingEndTime"] = self.ended
                out["TrainingTimeInSeconds"] = max(1, int(self.compute_seconds))
                out["BillableTimeInSeconds"] = max(1, int(self.compute_seconds))
        if self.failure_reason:
            out["FailureReason"] = self.failure_reason
        return out

    @property
    def model_artifacts(self) -> str:
        base = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return f"{base}/{self.name}/output/model.tar.gz"


class JobService:
    """The jobs of one local cloud: the store, the runner, and moto's SageMaker responses patched to use them."""

    def __init__(self, work_dir: Path, faults: Faults, region: str, account_id: str,
                 python: str = sys.executable, max_parallel: int = 2) -> None:
        self.jobs: dict[str, Job] = {}
        self._work_dir = work_dir
        self._faults = faults
        self._region = region
        self._account_id = account_id
        self._python = python
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="sagemaker-job")
        self._lock = threading.Lock()

    # -- API ----------------------------------------------------------------------------------

    def create(self, kind: str, request: dict[str, Any]) -> Job:
        operation = "CreateProcessingJob" if kind == "processing" else "CreateTrainingJob"
        validate_request(operation, request)
        fault = self._faults.take(f"sagemaker:{operation}")
        if fault:
            raise api_fault(fault.kind, operation)
        name = request["ProcessingJobName" if kind == "processing" else "TrainingJobName"]
        arn = f"arn:aws:sagemaker:{self._region}:{self._account_id}:{kind}-job/{name.lower()}"
        with self._lock:
            if name in self.jobs:
                raise ResourceInUse(f"Job name must be unique within an AWS account and region, "
                                    f"and a job with this name ({name}) already exists.")
            job = self.jobs[name] = Job(kind, name, request, arn)
        self._pool.submit(self._run_guarded, job)
        return job

    def get(self, name: str, kind: str) -> Job:
        job = self.jobs.get(name)
        if job is None or job.kind != kind:
            raise ValidationException(f"Could not find {kind} job '{name}'.")
        return job

    def stop(self, name: str, kind: str) -> None:
        job = self.get(name, kind)
        job.stop_requested = True
        if job.process and job.process.poll() is None:
            job.process.kill()

    @property
    def running(self) -> int:
        return sum(1 for job in self.jobs.values() if job.status not in _TERMINAL)

    def shutdown(self) -> None:
        for job in self.jobs.values():
            if job.process and job.process.poll() is None:
                job.process.kill()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- running a job ----------------------------------------------------------------------------

    def _run_guarded(self, job: Job) -> None:
        try:
            self._run(job)
        except Exception as exc:  # a broken job must end Failed, never hang a .sync task
            self._finish(job, "Failed", f"ClientError: {type(exc).__name__}: {exc}")

    def _run(self, job: Job) -> None:
        job.started = dt.datetime.now(dt.UTC)
        job.secondary_status = "Downloading"
        sandbox = job.sandbox = self._work_dir / "jobs" / job.name
        shutil.rmtree(sandbox, ignore_errors=True)
        root = sandbox / "opt_ml"
        root.mkdir(parents=True)
        fault = self._faults.take(f"job:{job.kind}")
        if fault and fault.kind == "capacity":
            return self._finish(job, "Failed", CAPACITY_ERROR)
        if fault and fault.kind == "algorithm":
            return self._finish(job, "Failed", "AlgorithmError: injected fault: the algorithm exited with an error")
        try:
            command, env, cwd = (self._prepare_processing(job, root) if job.kind == "processing"
                                 else self._prepare_training(job, root))
        except ContainerStartFailed as failed:
            return self._finish(job, "Failed", algorithm_error(failed.failure))
        if fault and fault.kind == "hang":
            command = [self._python, "-c", "import time; time.sleep(10**6)"]
        job.secondary_status = "Training" if job.kind == "training" else "InProgress"
        exit_code, tail, seconds = self._execute(job, cwd, command, env, self._timeout(job))
        job.compute_seconds = seconds
        if job.kind == "training":
            self._sync_checkpoints(job, root, upload=True)
        if job.stop_requested or exit_code is None:
            reason = "MaxRuntimeExceeded" if exit_code is None else "Stopped"
            job.secondary_status = reason
            return self._finish(job, "Stopped", None if reason == "Stopped" else f"{reason}: the job ran out of time")
        if exit_code != 0:
            failure = root / "output" / "failure"
            return self._finish(job, "Failed", algorithm_error(failure.read_text(errors="replace"))
                                if failure.exists() else f"AlgorithmError: exit code {exit_code}\n{tail}")
        job.secondary_status = "Uploading"
        if job.kind == "processing":
            self._upload_processing_outputs(job, root)
        else:
            self._upload_model(job, root)
        self._finish(job, "Completed", None)

    def _finish(self, job: Job, status: str, failure: str | None) -> None:
        job.failure_reason = failure
        job.exit_message = failure
        job.ended = dt.datetime.now(dt.UTC)
        if job.kind == "training" and status != "Stopped":
            job.secondary_status = status
        job.status = status

    def _execute(self, job: Job, cwd: Path, command: list[str], env: dict[str, str],
                 timeout: float) -> tuple[int | None, str, float]:
        log_path = self._log(job)
        started = dt.datetime.now(dt.UTC)
        with open(log_path, "ab") as log:
            # The job's own entrypoint, as its container would run it: an argv list, no shell.
            job.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                           env=env, cwd=cwd)
            try:
                exit_code: int | None = job.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()
                exit_code = None
        seconds = (dt.datetime.now(dt.UTC) - started).total_seconds()
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        return exit_code, tail, seconds

    @staticmethod
    def _log(job: Job) -> Path:
        return job.sandbox / "job.log"  # type: ignore[operator]

    def _base_env(self, root: Path) -> dict[str, str]:
        # Jobs reach S3 only through their inputs and outputs, which SageMaker moves for them.
        return container_env(root.parent / "home", self._region) | {
            "SELFHEAL_OPT_ML": str(root), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}

    @staticmethod
    def _timeout(job: Job) -> float:
        return float(job.request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))

    # processing ----------------------------------------------------------------------------------

    def _prepare_processing(self, job: Job, root: Path) -> tuple[list[str], dict[str, str], Path]:
        request = job.request
        for item in request.get("ProcessingInputs", []):
            s3_input = item.get("S3Input")
            if s3_input is None:
                raise ValueError(f"input {item['InputName']}: only S3Input is supported locally")
            if s3_input.get("S3InputMode", "File") != "File":
                raise ValueError(f"input {item['InputName']}: only File mode is supported locally")
            download(s3_input["S3Uri"], s3_input["S3DataType"], _local(root, s3_input["LocalPath"]))
        for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            _local(root, output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        config_dir = root / "config"
        config_dir.mkdir(exist_ok=True)
        (config_dir / "processingjobconfig.json").write_text(json.dumps(request, default=str))
        app = request["AppSpecification"]
        command = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        if not command:
            raise ValueError("AppSpecification has no ContainerEntrypoint: the image's own entrypoint "
                             "cannot run locally")
        command = [self._python if part in {"python", "python3"} else _local_arg(root, part) for part in command]
        env = self._base_env(root) | request.get("Environment", {})
        return command, env, root.parent

    def _upload_processing_outputs(self, job: Job, root: Path) -> None:
        for output in job.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            s3_output = output["S3Output"]
            upload_dir(_local(root, s3_output["LocalPath"]), s3_output["S3Uri"])

    # training --------------------------------------------------------------------------------------

    def _prepare_training(self, job: Job, root: Path) -> tuple[list[str], dict[str, str], Path]:
        request = job.request
        for channel in request.get("InputDataConfig", []):
            source = channel["DataSource"]["S3DataSource"]
            download(source["S3Uri"], source["S3DataType"], root / "input" / "data" / channel["ChannelName"])
        for folder in ("model", "output/data", "input/config", "checkpoints"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self._sync_checkpoints(job, root, upload=False)
        hyperparameters = request.get("HyperParameters", {})
        (root / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
        (root / "input/config/inputdataconfig.json").write_text(
            json.dumps({c["ChannelName"]: {k: v for k, v in c.items() if k != "ChannelName"}
                        for c in request.get("InputDataConfig", [])}))
        (root / "input/config/resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
        # SageMaker names the job in its container (sagemaker-containers _params.TRAINING_JOB_ENV).
        env = self._base_env(root) | request.get("Environment", {}) | {"TRAINING_JOB_NAME": job.name}
        submit = _decode_hp(hyperparameters.get("sagemaker_submit_directory", ""))
        fetched = fetch_code(str(submit), root.parent, isolated=request.get("EnableNetworkIsolation", False))
        started = start_user_code("training", root, env, self._log(job), fetched)
        return self._user_module(started, env)

    def _user_module(self, started: Started, env: dict[str, str]) -> tuple[list[str], dict[str, str], Path]:
        """The toolkit's run_module: `python -m <module> <args>` in the code directory, with its SM_* variables."""
        if not started.user_entry_point:
            raise ValueError("only script mode is supported locally: set the sagemaker_program hyperparameter "
                             "(without it the XGBoost container runs its built-in algorithm)")
        return [self._python, "-m", str(started.module_name), *started.args], env | started.env, started.code_dir

    def _sync_checkpoints(self, job: Job, root: Path, upload: bool) -> None:
        config = job.request.get("CheckpointConfig")
        if not config:
            return
        local = _local(root, config.get("LocalPath", f"{OPT_ML}/checkpoints"))
        if upload:
            upload_dir(local, config["S3Uri"])
        else:
            download(config["S3Uri"], "S3Prefix", local, required=False)  # a first run has no checkpoints

    def _upload_model(self, job: Job, root: Path) -> None:
        bucket, key = split_s3_uri(job.model_artifacts)
        archive = job.sandbox / "model.tar.gz"  # type: ignore[operator]
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted((root / "model").rglob("*")):
                tar.add(path, arcname=str(path.relative_to(root / "model")), recursive=False)
        _s3().upload_file(str(archive), bucket, key)


# -- S3 and the container's paths ------------------------------------------------------------------

def _s3() -> Any:
    return boto3.client("s3")


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def download(uri: str, data_type: str, target: Path, required: bool = True) -> None:
    """Lay out S3 data as SageMaker does for File mode: S3Prefix keeps paths below the prefix."""
    target.mkdir(parents=True, exist_ok=True)
    bucket, prefix = split_s3_uri(uri)
    if data_type == "ManifestFile":
        manifest = json.loads(_s3().get_object(Bucket=bucket, Key=prefix)["Body"].read())
        base_bucket, base_prefix = split_s3_uri(manifest[0]["prefix"])
        for relative in manifest[1:]:
            _fetch(base_bucket, base_prefix + relative, target / relative)
        return
    if data_type != "S3Prefix":
        raise ValueError(f"S3DataType {data_type} is not supported locally")
    found = False
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name
            _fetch(bucket, item["Key"], target / relative)
            found = True
    if required and not found:
        raise ValueError(f"ClientError: No S3 objects found under S3 URL \"{uri}\"")


def _fetch(bucket: str, key: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _s3().download_file(bucket, key, str(path))


def fetch_code(location: str, sandbox: Path, isolated: bool) -> Path | None:
    """An s3:// code location, fetched as a container with network access and its role's credentials would;
    under network isolation the container has neither: None, and the toolkit's own attempt fails as it would."""
    if isolated or not location.startswith("s3://"):
        return None
    bucket, key = split_s3_uri(location)
    archive = sandbox / "fetched-code" / Path(key).name
    archive.parent.mkdir(parents=True, exist_ok=True)
    _s3().download_file(bucket, key, str(archive))
    return archive


def upload_dir(local: Path, uri: str) -> None:
    bucket, prefix = split_s3_uri(uri)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            key = f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}"
            _s3().upload_file(str(path), bucket, key)


def algorithm_error(failure: str) -> str:
    """DescribeTrainingJob's FailureReason for a container that wrote /opt/ml/output/failure: "Amazon SageMaker
    returns the first 1024 characters from this file as FailureReason" (sagemaker-containers _files.py,
    write_failure_file, after the SageMaker Developer Guide's "How Amazon SageMaker Runs Your Training Image")."""
    return f"AlgorithmError: {failure[:1024]}"


def _local(root: Path, container_path: str) -> Path:
    if not container_path.startswith(OPT_ML + "/"):
        raise ValueError(f"{container_path}: container paths must be under {OPT_ML}/")
    return root / container_path[len(OPT_ML) + 1:]


def _local_arg(root: Path, part: str) -> str:
    return str(_local(root, part)) if part.startswith(OPT_ML + "/") else part


def _decode_hp(value: str) -> Any:
    """The SageMaker SDK JSON-encodes script-mode hyperparameters; the training toolkit decodes them
    (sagemaker_containers _env.read_hyperparameters)."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def api_fault(kind: str, operation: str) -> ServiceException:
    """The error a SageMaker API refuses a request with, by fault kind (faults.KINDS)."""
    if kind == "throttle":
        return ThrottlingException(f"Rate exceeded for {operation}")
    if kind == "limit":
        return ResourceLimitExceeded(f"The account-level service limit for {operation} was exceeded.")
    raise ValueError(f"unknown API fault kind {kind}")


# -- moto's SageMaker responses, answered by the job service ------------------------------------------

def patch_moto_sagemaker(service: JobService) -> Callable[[], None]:
    """Point moto's SageMaker job operations at the service; returns the undo."""

    def create(kind: str) -> Callable[[SageMakerResponse], ActionResult]:
        def handler(self: SageMakerResponse) -> ActionResult:
            job = service.create(kind, json.loads(self.body))
            return ActionResult({f"{kind.capitalize()}JobArn": job.arn})
        return handler

    def describe(kind: str) -> Callable[[SageMakerResponse], ActionResult]:
        def handler(self: SageMakerResponse) -> ActionResult:
            name = self._get_param(f"{kind.capitalize()}JobName")
            return ActionResult(service.get(name, kind).describe())
        return handler

    def stop(kind: str) -> Callable[[SageMakerResponse], EmptyResult]:
        def handler(self: SageMakerResponse) -> EmptyResult:
            service.stop(self._get_param(f"{kind.capitalize()}JobName"), kind)
            return EmptyResult()
        return handler

    patches = {f"{verb}_{kind}_job": factory(kind)
               for kind in ("processing", "training")
               for verb, factory in (("create", create), ("describe", describe), ("stop", stop))}
    originals = {name: SageMakerResponse.__dict__.get(name) for name in patches}
    for name, handler in patches.items():
        setattr(SageMakerResponse, name, handler)

    def undo() -> None:
        for name, handler in originals.items():
            if handler is None:  # an operation moto lacks (StopTrainingJob)
                delattr(SageMakerResponse, name)
            else:
                setattr(SageMakerResponse, name, handler)

    return undo
