"""The local cloud: template.yaml's resources in moto, with the real handlers, ASL and job scripts.

    with LocalCloud(work_dir) as cloud:
        cloud.put_model_config("churn", {...})
        cloud.upload("churn", Path("data.csv"))
        cloud.wait_idle(timeout=300)

Nothing here is a second version of the application: functions run from functions/ with the environment
the template gives them, state machines are the ASL files with the template's substitutions, and jobs are
ml/ scripts run under SageMaker's container contract.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import yaml
from moto import mock_aws

from ..code import code_version, publish_code
from .audit import CallAudit
from .container import toolkit_python
from .deploy import deploy_template
from .eventbridge import patch_moto_events
from .faults import Faults
from .hosting import HostingService, patch_moto_hosting
from .lambdas import FunctionError, FunctionRouter, FunctionSpec, patch_moto_invoke, route_thread_output
from .registry import patch_moto_registry
from .sagemaker_jobs import JobService, patch_moto_sagemaker
from .sfn_integrations import patch_engine
from .template import ACCOUNT_ID, REGION, Template

REPO_ROOT = Path(__file__).resolve().parents[3]
LOCAL_PARAMETERS = {
    # The local cloud runs every image's script with this machine's Python; the names only label it.
    "XGBoostImageUri": "local/sagemaker-xgboost:3.0-5",
    "SKLearnImageUri": "local/sagemaker-scikit-learn:1.2-1",
}
_LAMBDA_ASYNC_RETRIES = 2  # Lambda's default for asynchronous invocations


class IdleTimeout(TimeoutError):
    """Work the local cloud started was still running when the caller's bound ran out."""


class LocalCloud:
    def __init__(self, work_dir: Path, root: Path = REPO_ROOT, time_scale: float = 0.001,
                 parameters: dict[str, str] | None = None, stack_name: str = "selfheal-local") -> None:
        self.root = root
        self.work_dir = Path(work_dir)
        self.time_scale = time_scale
        self.faults = Faults()
        self.template = Template.load(root / "template.yaml", stack_name,
                                      LOCAL_PARAMETERS | {"CodeVersion": code_version()} | (parameters or {}))
        self.audit = CallAudit(self.faults)
        self.router = FunctionRouter(self.work_dir / "logs", self.faults, acting_as=self.audit.acting_as)
        self.jobs = JobService(self.work_dir, self.faults, REGION, ACCOUNT_ID)
        self.hosting = HostingService(self.work_dir, self.faults, REGION, ACCOUNT_ID, time_scale)
        self.delivered: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (target, event), in order
        self.dead_letters: list[dict[str, Any]] = []  # async invokes that failed every attempt, with why
        self._async = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambda-async")
        self._pending: set[Future[None]] = set()
        self._pending_lock = threading.Lock()
        self._undo: list[Any] = []
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        toolkit_python()  # refuse to start without the toolkit containers start with, rather than half-run
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._set_env({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",  # noqa: S106 - moto needs credentials; these fake ones reach no AWS
                       "AWS_SESSION_TOKEN": "local", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION})
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True},
                                      "lambda": {"use_docker": False}})
        self._mock.start()
        self._undo += [
            route_thread_output(),
            self.audit.patch(),
            patch_moto_invoke(self.router),
            patch_moto_sagemaker(self.jobs),
            patch_moto_hosting(self.hosting),
            patch_moto_registry(REGION),
            patch_moto_events(self._deliver),
            patch_engine(self.time_scale, poll_seconds=0.05),
        ]
        self.resources = deploy_template(self)
        # The deploy command publishes ml/ under its content hash; locally CodeVersion names it.
        publish_code(self.client("s3"), self.bucket, self.template.parameters["CodeVersion"], self.root / "ml")

    def stop(self) -> None:
        self._async.shutdown(wait=False, cancel_futures=True)
        self.hosting.flush_capture()
        self.hosting.shutdown()
        self.jobs.shutdown()
        self.router.close()
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        self._set_env({key: value for key, value in self._saved_env.items()})

    def _set_env(self, values: dict[str, str | None]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # -- clients and names ---------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """One client per service, made on first use: making a client reads the whole of os.environ (botocore's
        proxy lookup), which Lambda handlers change in other threads (lambdas.py), and wait_idle asks every poll."""
        with self._clients_lock:
            if service not in self._clients:
                self._clients[service] = boto3.client(service, region_name=REGION)
            return self._clients[service]

    def resource(self, service: str) -> Any:
        return boto3.resource(service, region_name=REGION)

    def physical(self, logical_id: str) -> str:
        return self.template.physical[logical_id]

    @property
    def bucket(self) -> str:
        return self.resources.bucket

    @property
    def ledger_table(self) -> str:
        return self.resources.table

    # -- what users do -------------------------------------------------------------------------------

    def put_model_config(self, model: str, config: dict[str, Any]) -> None:
        self.client("s3").put_object(Bucket=self.bucket, Key=f"config/{model}.yaml",
                                     Body=yaml.safe_dump(config, sort_keys=False).encode())

    def upload(self, model: str, path: Path, name: str | None = None) -> str:
        key = f"incoming/{model}/{name or path.name}"
        self.client("s3").upload_file(str(path), self.bucket, key)
        return key

    def start_monitoring(self, model: str) -> str:
        """Start MonitorPipeline now for a model, as its schedule would (captured traffic flushed first)."""
        self.hosting.flush_capture()
        return self.client("stepfunctions").start_execution(
            stateMachineArn=self.resources.state_machines["MonitorPipeline"],
            name=f"monitor-{model[:40]}-{uuid.uuid4().hex[:12]}", input=json.dumps({"model": model}))["executionArn"]

    def approve_latest(self, model: str) -> str:
        """Approve the newest package of the model still pending, as a reviewer would in the Model Registry."""
        sagemaker = self.client("sagemaker")
        pending = sagemaker.list_model_packages(ModelPackageGroupName=f"selfheal-{model}",
                                                ModelApprovalStatus="PendingManualApproval",
                                                SortBy="CreationTime", SortOrder="Descending")
        packages = pending["ModelPackageSummaryList"]
        if not packages:
            raise ValueError(f"no model package of {model} is pending approval")
        arn = packages[0]["ModelPackageArn"]
        sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                       ApprovalDescription="approved by selfheal local run")
        return arn

    def invoke(self, function: str, event: Any) -> Any:
        """Invoke a template function synchronously (the Docker-free `sam local invoke`)."""
        return self.router.invoke(function, event)

    # -- async delivery (EventBridge, S3, Scheduler → Lambda) -------------------------------------------

    def _deliver(self, target: dict[str, Any], event: dict[str, Any]) -> None:
        self.delivered.append((target, event))
        future = self._async.submit(self._invoke_async, target, event)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def redeliver(self, index: int = -1) -> None:
        """Deliver an event again, as EventBridge's at-least-once delivery sometimes does."""
        self._deliver(*self.delivered[index])

    def _forget(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def _invoke_async(self, target: dict[str, Any], event: dict[str, Any]) -> None:
        if ":states:" in target["Arn"]:
            self.client("stepfunctions").start_execution(stateMachineArn=target["Arn"], name=str(uuid.uuid4()),
                                                         input=json.dumps(event))
            return
        error: FunctionError | None = None
        for _ in range(1 + _LAMBDA_ASYNC_RETRIES):
            try:
                self.router.invoke(target["Arn"], event)
                return
            except FunctionError as exc:
                error = exc
        self._dead_letter(target, event, error)

    def _dead_letter(self, target: dict[str, Any], event: dict[str, Any], error: FunctionError | None) -> None:
        """Keep an event that failed every attempt in the target's dead-letter queue, as configured."""
        reason = f"{error.error_type}: {error.message}" if error else "unknown"
        self.dead_letters.append({"target": target["Arn"], "event": event, "error": reason})
        queue_arn = target.get("DeadLetterConfig", {}).get("Arn")
        if queue_arn:
            queue = queue_arn.rsplit(":", 1)[-1]
            url = self.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
            self.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(event),
                                            MessageAttributes={"ERROR_MESSAGE": {"DataType": "String",
                                                                                 "StringValue": reason[:256]}})

    # -- waiting ---------------------------------------------------------------------------------------

    def busy(self) -> dict[str, int]:
        with self._pending_lock:
            pending = sum(1 for f in self._pending if not f.done())
        sfn = self.client("stepfunctions")
        running = 0
        for machine in sfn.list_state_machines()["stateMachines"]:
            running += len(sfn.list_executions(stateMachineArn=machine["stateMachineArn"],
                                               statusFilter="RUNNING")["executions"])
        return {"deliveries": pending, "executions": running, "jobs": self.jobs.running,
                "endpoints": self.hosting.busy}

    def wait_idle(self, timeout: float = 600, poll: float = 0.1, on_tick: Callable[[], None] | None = None,
                  tick_seconds: float = 5.0) -> None:
        """Return when nothing the cloud started is running (seen twice in a row); raise at the bound.
        `on_tick` is called every `tick_seconds` while waiting (progress for people)."""
        deadline = time.monotonic() + timeout
        next_tick = time.monotonic() + tick_seconds
        quiet = 0
        while quiet < 2:
            if time.monotonic() > deadline:
                raise IdleTimeout(f"still busy after {timeout:.0f}s: {self.busy()}")
            quiet = quiet + 1 if not any(self.busy().values()) else 0
            if on_tick and time.monotonic() >= next_tick:
                on_tick()
                next_tick = time.monotonic() + tick_seconds
            time.sleep(poll)
        self.hosting.flush_capture()

    def fire_schedule(self, name: str, group: str = "default") -> str:
        """Do what EventBridge Scheduler does when a schedule comes due: start its target with its input."""
        schedule = self.client("scheduler").get_schedule(Name=name, GroupName=group)
        target = schedule["Target"]
        if ":states:" not in target["Arn"]:
            raise ValueError(f"schedule {name}: only Step Functions targets are run locally")
        return self.client("stepfunctions").start_execution(
            stateMachineArn=target["Arn"], name=f"{name[:40]}-{uuid.uuid4().hex[:12]}",
            input=target.get("Input", "{}"))["executionArn"]

    def functions(self) -> list[FunctionSpec]:
        return list({spec.logical_id: spec for spec in self.router._specs.values()}.values())
