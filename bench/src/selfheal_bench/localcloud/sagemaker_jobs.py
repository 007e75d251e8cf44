"""SageMaker processing and training jobs, run for real from ml/ under the container contract.

CreateProcessingJob and CreateTrainingJob are answered here instead of by moto's stubs (which complete
every job at once and drop most request fields): the request is validated against botocore's service
model, its S3 inputs are downloaded into a sandbox laid out like the container's /opt/ml, one for each of its
instances (cluster.py), and the job runs in subprocesses that see what the container would (container.py: no route
to AWS), one per instance, all at once. A processing job runs its
ContainerEntrypoint; a training job is started by the real script-mode toolkit (it finds and fetches the code
as the XGBoost container does), then its user module runs with the toolkit's arguments and SM_* variables.
The job is Completed when every instance's process succeeded; the first to fail fails the job with its reason, and
the others are stopped. Every instance's outputs go back to S3, and Describe* reports InProgress, then Completed,
Failed or Stopped, with the request's own fields, as SageMaker does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
from botocore.validate import ParamValidator
from moto.core.exceptions import ServiceException

from .. import job_host
from . import cluster
from .container import ContainerStartFailed, Started, container_env, start_user_code
from .faults import Faults
from .instance_rules import volume_key_refusal
from .s3_data import download, fetch_code, put_file, split_s3_uri, upload_dir

OPT_ML = "/opt/ml"
_POLL_SECONDS = 0.05  # how often a running job's processes are checked
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
class Host:
    """One instance of a job: its /opt/ml, its log, its process and how that ended."""

    name: str
    sandbox: Path
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    process: subprocess.Popen[bytes] | job_host.ServedProcess | None = None
    exit_code: int | None = None
    seconds: float = 0.0

    @property
    def root(self) -> Path:
        return self.sandbox / "opt_ml"

    @property
    def log(self) -> Path:
        return self.sandbox / "job.log"

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.name, "exit_code": self.exit_code, "seconds": round(self.seconds, 3)}


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
    hosts: list[Host] = field(default_factory=list)
    stop_requested: bool = False

    @property
    def instance_count(self) -> int:
        return cluster.instance_count(self.kind, self.request)

    def log(self, host: str = "algo-1") -> Path:
        return next(h.log for h in self.hosts if h.name == host)

    def kill(self) -> None:
        for host in self.hosts:
            if host.process and host.process.poll() is None:
                host.process.kill()

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
    """The jobs of one local cloud: the store and the runner (sagemaker_api.py answers moto's SageMaker calls with
    them)."""

    def __init__(self, work_dir: Path, faults: Faults, region: str, account_id: str,
                 python: str = sys.executable, max_parallel: int = 2, serve: bool = True) -> None:
        self.jobs: dict[str, Job] = {}
        self._work_dir = work_dir
        self._faults = faults
        self._region = region
        self._account_id = account_id
        self._python = python
        self._serve = serve  # start job hosts from the pre-imported server where it can (job_host.py)
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="sagemaker-job")
        self._lock = threading.Lock()
        self._ended = threading.Condition()

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
        job.kill()

    def wait_for_end(self, name: str, seconds: float) -> None:
        """Return when the named job has ended, or after `seconds` (a `.sync` task's poll, without spinning)."""
        with self._ended:
            self._ended.wait_for(lambda: (job := self.jobs.get(name)) is not None and job.status in _TERMINAL,
                                 timeout=seconds)

    @property
    def running(self) -> int:
        return sum(1 for job in self.jobs.values() if job.status not in _TERMINAL)

    def shutdown(self) -> None:
        for job in self.jobs.values():
            job.stop_requested = True  # a host still starting has no process to kill yet: _execute kills it
            job.kill()
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
        names = cluster.host_names(job.instance_count)
        job.hosts = [Host(name, sandbox / name) for name in names]
        hosts_file = cluster.write_hosts_file(
            _mkdir(sandbox) / "hosts", cluster.loopback_addresses(f"{sandbox}:{job.created.isoformat()}", names))
        fault = self._faults.take(f"job:{job.kind}")
        if fault and fault.kind == "capacity":
            return self._finish(job, "Failed", CAPACITY_ERROR)
        if fault and fault.kind == "algorithm":
            return self._finish(job, "Failed", "AlgorithmError: injected fault: the algorithm exited with an error")
        try:
            for host in job.hosts:
                host.root.mkdir(parents=True)
                prepare = self._prepare_processing if job.kind == "processing" else self._prepare_training
                host.command, host.env, host.cwd = prepare(job, host, names)
                host.env = cluster.host_threads(len(names)) | host.env | {
                    "SELFHEAL_HOSTS_FILE": str(hosts_file), "PYTHONPATH": _pythonpath(host.env.get("PYTHONPATH"))}
        except ContainerStartFailed as failed:
            return self._finish(job, "Failed", algorithm_error(failed.failure))
        if fault and fault.kind == "hang":
            for host in job.hosts:
                host.command = [self._python, "-c", "import time; time.sleep(10**6)"]
        job.secondary_status = "Training" if job.kind == "training" else "InProgress"
        timed_out = self._execute(job, self._timeout(job))
        job.compute_seconds = max(host.seconds for host in job.hosts)
        if job.kind == "training":
            self._upload_checkpoints(job)
        if job.stop_requested or timed_out:
            reason = "MaxRuntimeExceeded" if timed_out else "Stopped"
            job.secondary_status = reason
            return self._finish(job, "Stopped", None if reason == "Stopped" else f"{reason}: the job ran out of time")
        failed_host = next((host for host in job.hosts if host.exit_code), None)
        if failed_host:
            return self._finish(job, "Failed", host_failure(failed_host))
        job.secondary_status = "Uploading"
        try:
            if job.kind == "processing":
                self._upload_processing_outputs(job)
            else:
                self._upload_model(job)
        except cluster.OutputClash as clash:
            return self._finish(job, "Failed", f"ClientError: {clash}")
        self._finish(job, "Completed", None)

    def _finish(self, job: Job, status: str, failure: str | None) -> None:
        job.failure_reason = failure
        job.exit_message = failure
        job.ended = dt.datetime.now(dt.UTC)
        if job.kind == "training" and status != "Stopped":
            job.secondary_status = status
        with self._ended:
            job.status = status
            self._ended.notify_all()

    def _execute(self, job: Job, timeout: float) -> bool:
        """Run every host's process at once until all succeed, one fails (the others are then stopped, as
        SageMaker stops a job whose host failed), or time runs out; True when it ran out."""
        started = time.monotonic()
        for host in job.hosts:
            host.process = self._start(host)
        while True:
            elapsed = time.monotonic() - started
            if job.stop_requested:  # StopJob or shutdown came while a host was starting (a served host waits for
                job.kill()          # the server's imports before it has a process)
            for host in job.hosts:
                if host.exit_code is None and host.process and host.process.poll() is not None:
                    host.exit_code, host.seconds = host.process.returncode, elapsed
            if all(host.exit_code is not None for host in job.hosts):
                return False
            if any(host.exit_code for host in job.hosts) or elapsed > timeout:
                job.kill()
                for host in job.hosts:
                    if host.process:
                        host.process.wait()
                    if host.exit_code is None:  # stopped here: not the host that failed
                        host.seconds = time.monotonic() - started
                return elapsed > timeout
            time.sleep(_POLL_SECONDS)

    def _start(self, host: Host) -> subprocess.Popen[bytes] | job_host.ServedProcess:
        """The host's process: forked from the pre-imported job host server when it can start the command as a fresh
        interpreter would (job_host.py), else a fresh interpreter."""
        cwd = host.cwd or host.sandbox
        if self._serve and job_host.servable(host.command, host.env, cwd):
            return job_host.start(host.command, host.env, cwd, host.log)
        with open(host.log, "ab") as log:
            # The job's own entrypoint, as its container would run it: an argv list, no shell.
            return subprocess.Popen(host.command, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                                    env=host.env, cwd=cwd)

    def _base_env(self, host: Host) -> dict[str, str]:
        # Jobs reach S3 only through their inputs and outputs, which SageMaker moves for them.
        return container_env(host.sandbox / "home", self._region) | {
            "SELFHEAL_OPT_ML": str(host.root), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}

    @staticmethod
    def _timeout(job: Job) -> float:
        return float(job.request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400))

    # processing ----------------------------------------------------------------------------------

    def _prepare_processing(self, job: Job, host: Host, hosts: list[str]) -> tuple[list[str], dict[str, str], Path]:
        request, root = job.request, host.root
        for item in request.get("ProcessingInputs", []):
            s3_input = item.get("S3Input")
            if s3_input is None:
                raise ValueError(f"input {item['InputName']}: only S3Input is supported locally")
            if s3_input.get("S3InputMode", "File") != "File":
                raise ValueError(f"input {item['InputName']}: only File mode is supported locally")
            distribution = s3_input.get("S3DataDistributionType", "FullyReplicated")
            download(s3_input["S3Uri"], s3_input["S3DataType"], _local(root, s3_input["LocalPath"]),
                     select=lambda items, d=distribution: cluster.shard(items, host.name, hosts, d))
        for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            _local(root, output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        config_dir = _mkdir(root / "config")
        (config_dir / "processingjobconfig.json").write_text(json.dumps(request, default=str))
        (config_dir / "resourceconfig.json").write_text(
            json.dumps(cluster.processing_resource_config(host.name, hosts)))
        app = request["AppSpecification"]
        command = [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        if not command:
            raise ValueError("AppSpecification has no ContainerEntrypoint: the image's own entrypoint "
                             "cannot run locally")
        command = [self._python if part in {"python", "python3"} else _local_arg(root, part) for part in command]
        env = self._base_env(host) | request.get("Environment", {})
        return command, env, host.sandbox

    def _upload_processing_outputs(self, job: Job) -> None:
        for output in job.request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            s3_output = output["S3Output"]
            upload_dir(self._gathered(job, s3_output["LocalPath"], output["OutputName"]), s3_output["S3Uri"])

    def _gathered(self, job: Job, container_path: str, name: str) -> Path:
        """One output folder with every host's files (cluster.gather)."""
        merged = job.sandbox / "gathered" / name  # type: ignore[operator]
        shutil.rmtree(merged, ignore_errors=True)
        cluster.gather({host.name: _local(host.root, container_path) for host in job.hosts}, _mkdir(merged))
        return merged

    # training --------------------------------------------------------------------------------------

    def _prepare_training(self, job: Job, host: Host, hosts: list[str]) -> tuple[list[str], dict[str, str], Path]:
        request, root = job.request, host.root
        for channel in request.get("InputDataConfig", []):
            source = channel["DataSource"]["S3DataSource"]
            distribution = source.get("S3DataDistributionType", "FullyReplicated")
            download(source["S3Uri"], source["S3DataType"], root / "input" / "data" / channel["ChannelName"],
                     select=lambda items, d=distribution: cluster.shard(items, host.name, hosts, d))
        for folder in ("model", "output/data", "input/config", "checkpoints"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self._download_checkpoints(job, host)
        hyperparameters = request.get("HyperParameters", {})
        (root / "input/config/hyperparameters.json").write_text(json.dumps(hyperparameters))
        (root / "input/config/inputdataconfig.json").write_text(
            json.dumps({c["ChannelName"]: {k: v for k, v in c.items() if k != "ChannelName"}
                        for c in request.get("InputDataConfig", [])}))
        (root / "input/config/resourceconfig.json").write_text(json.dumps(
            cluster.training_resource_config(host.name, hosts, request["ResourceConfig"]["InstanceType"])))
        # SageMaker names the job in its container (sagemaker-containers _params.TRAINING_JOB_ENV).
        env = self._base_env(host) | request.get("Environment", {}) | {"TRAINING_JOB_NAME": job.name}
        submit = _decode_hp(hyperparameters.get("sagemaker_submit_directory", ""))
        fetched = fetch_code(str(submit), host.sandbox, isolated=request.get("EnableNetworkIsolation", False))
        started = start_user_code("training", root, env, host.log, fetched)
        return self._user_module(started, env)

    def _user_module(self, started: Started, env: dict[str, str]) -> tuple[list[str], dict[str, str], Path]:
        """The toolkit's run_module: `python -m <module> <args>` in the code directory, with its SM_* variables."""
        if not started.user_entry_point:
            raise ValueError("only script mode is supported locally: set the sagemaker_program hyperparameter "
                             "(without it the XGBoost container runs its built-in algorithm)")
        return [self._python, "-m", str(started.module_name), *started.args], env | started.env, started.code_dir

    def _download_checkpoints(self, job: Job, host: Host) -> None:
        """Every instance starts from the checkpoints in S3 (a first run has none)."""
        config = job.request.get("CheckpointConfig")
        if config:
            download(config["S3Uri"], "S3Prefix", _local(host.root, config.get("LocalPath", f"{OPT_ML}/checkpoints")),
                     required=False)

    def _upload_checkpoints(self, job: Job) -> None:
        """What every host left in its checkpoint folder, gathered (cluster.gather), as SageMaker syncs it to S3."""
        config = job.request.get("CheckpointConfig")
        if config:
            upload_dir(self._gathered(job, config.get("LocalPath", f"{OPT_ML}/checkpoints"), "checkpoints"),
                       config["S3Uri"])

    def _upload_model(self, job: Job) -> None:
        """model.tar.gz of every host's /opt/ml/model, aggregated (cluster.gather)."""
        model = self._gathered(job, f"{OPT_ML}/model", "model")
        bucket, key = split_s3_uri(job.model_artifacts)
        archive = job.sandbox / "model.tar.gz"  # type: ignore[operator]
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(model.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(model)), recursive=False)
        put_file(archive, bucket, key)


def host_failure(host: Host) -> str:
    """FailureReason for a host whose process failed: its failure file, else its exit code and log's tail."""
    failure = host.root / "output" / "failure"
    if failure.exists():
        return algorithm_error(failure.read_text(errors="replace"))
    tail = "\n".join(host.log.read_text(errors="replace").splitlines()[-15:])
    return f"AlgorithmError: exit code {host.exit_code}\n{tail}"


def _pythonpath(existing: str | None) -> str:
    """The job's PYTHONPATH with the hosts' names resolvable (hostnames/sitecustomize.py)."""
    return os.pathsep.join([str(cluster.HOSTNAMES_DIR), *([existing] if existing else [])])


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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
