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

import contextlib
import contextvars
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import yaml
from moto import mock_aws
from moto.moto_api._internal import mock_random
from moto.s3.models import s3_backends
from moto.stepfunctions.parser.api import ExecutionStatus
from moto.stepfunctions.parser.models import stepfunctions_parser_backends

from selfheal.code import code_version, publish_code
from selfheal.project import find_project

from .. import iam
from .async_invoke import AsyncInvoker, DeadLetter
from .audit import CallAudit
from .clock import Clock
from .container import toolkit_python
from .deploy import deploy_template
from .eventbridge import patch_moto_events
from .faults import Faults
from .hosting import HostingService
from .hosting_api import patch_moto_hosting
from .lambdas import (
    FunctionRouter,
    FunctionSpec,
    isolate_environments,
    patch_moto_invoke,
    route_thread_output,
)
from .parsed_once import patch_parsers
from .registry import patch_moto_registry
from .sagemaker_api import patch_moto_sagemaker
from .sagemaker_jobs import JobService
from .sfn_integrations import patch_engine
from .template import ACCOUNT_ID, REGION, Template, TemplateError

LOCAL_PARAMETERS = {
    # The local cloud runs every image's script with this machine's Python; the names only label it.
    "XGBoostImageUri": "local/sagemaker-xgboost:3.0-5",
    "SKLearnImageUri": "local/sagemaker-scikit-learn:1.2-1",
}
# Lambda's default concurrency quota per account and Region; new accounts may have less.
DEFAULT_CONCURRENCY_QUOTA = 1000


@dataclass(frozen=True)
class Delivery:
    """An event a rule handed to one of its targets."""

    rule: str
    target: dict[str, Any]
    event: dict[str, Any]


class IdleTimeout(TimeoutError):
    """Work the local cloud started was still running when the caller's bound ran out."""


class LocalCloud:
    def __init__(self, work_dir: Path, root: Path | None = None, time_scale: float = 0.001,
                 parameters: dict[str, str] | None = None, stack_name: str = "selfheal-local",
                 concurrency_quota: int = DEFAULT_CONCURRENCY_QUOTA) -> None:
        self.root = root = root or find_project()
        # Job processes run with their sandbox as working directory: a relative path would double.
        self.work_dir = Path(work_dir).resolve()
        self.time_scale = time_scale
        self.concurrency_quota = concurrency_quota
        code = {"CodeVersion": code_version(root / "ml")}
        self.template = Template.load(root / "template.yaml", stack_name, LOCAL_PARAMETERS | code | (parameters or {}))
        self.faults = Faults(self.template.of_type("AWS::Serverless::Function"))
        self.audit = CallAudit(self.faults, allowed=lambda: self.policies().allowed)
        self.router = FunctionRouter(self.work_dir / "logs", self.faults, acting_as=self.audit.acting_as)
        self.jobs = JobService(self.work_dir, self.faults, REGION, ACCOUNT_ID)
        self.clock = Clock(time_scale)
        # Calendar time where this machine stamps what AWS would (capture records, ground-truth hours);
        # a backtest replaces it with its simulated clock (simclock.py).
        self.calendar: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.hosting = HostingService(self.work_dir, self.faults, REGION, ACCOUNT_ID, self.clock,
                                      now=lambda: self.calendar())
        self.delivered: list[Delivery] = []  # in order
        self.lambda_async = AsyncInvoker(self.router, self.client, time_scale, acting_as=self.audit.acting_as)
        self._async = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambda-async")
        self._pending: set[Future[None]] = set()
        self._pending_lock = threading.Lock()
        self._undo: list[Any] = []
        self._mock: Any = None
        self._saved_env: dict[str, str | None] = {}
        self._policies: iam.TemplatePolicies | None = None
        self._policies_lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalCloud:
        try:
            self.start()
        except BaseException:
            self.stop()  # a deployment AWS refuses leaves nothing running
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        toolkit_python()  # refuse to start without the toolkit containers start with, rather than half-run
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._set_env({"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",  # noqa: S106 - moto needs credentials; these fake ones reach no AWS
                       "AWS_SESSION_TOKEN": "local", "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                       # moto then refuses reservations leaving fewer than 100 unreserved executions, as Lambda does
                       "MOTO_LAMBDA_CONCURRENCY_QUOTA": str(self.concurrency_quota)})
        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True},
                                      "lambda": {"use_docker": False}})
        self._mock.start()
        # The ids moto makes up (KMS key ids, S3 version ids, ...) follow from the stack's name, as moto allows: two
        # clouds of one stack are alike, so the definitions they render are too (parsed_once keeps their parse).
        mock_random.seed(self.template.stack_name)
        self._undo += [
            isolate_environments(),
            route_thread_output(),
            self.audit.patch(),
            patch_moto_invoke(self.router),
            patch_moto_sagemaker(self.jobs),
            patch_moto_hosting(self.hosting),
            patch_moto_registry(REGION),
            patch_moto_events(self._deliver),
            patch_parsers(),
            # A .sync task wakes when its job ends; the poll only bounds how late it sees a stopped execution.
            patch_engine(self.clock, poll_seconds=1.0, wait_for_job=self.jobs.wait_for_end),
        ]
        self.resources = deploy_template(self)
        self.audit.state_machines = {arn: name for name, arn in self.resources.state_machines.items()}
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

    def policies(self) -> iam.TemplatePolicies:
        """The IAM view of this cloud's template (its roles, with this cloud's physical names); read once."""
        with self._policies_lock:
            if self._policies is None:
                self._policies = self._load_policies()
        return self._policies

    def _load_policies(self) -> iam.TemplatePolicies:
        def resolver(logical_id: str, attribute: str | None) -> str | None:
            try:
                return self.template.get_att(logical_id, attribute) if attribute else self.template.ref(logical_id)
            except TemplateError:
                return None  # resources SAM adds (layers, generated roles): the default naming

        return iam.load(self.root / "template.yaml", account_id=ACCOUNT_ID, region=REGION,
                        stack_name=self.template.stack_name, resolver=resolver,
                        parameters={k: str(v) for k, v in self.template.parameters.items()})

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

    def put_ground_truth(self, model: str, records: list[dict[str, Any]]) -> str:
        """Labels arriving, as a labelling process writes them: ground-truth/<model>/yyyy/mm/dd/hh/<file>.jsonl
        (SageMaker's layout: the hour they arrived); returns the key."""
        key = f"ground-truth/{model}/{self.calendar():%Y/%m/%d/%H}/{uuid.uuid4().hex}.jsonl"
        body = "".join(json.dumps(record) + "\n" for record in records).encode()
        self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=body)
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

    def seed_object(self, key: str, body: bytes, version_id: str | None = None) -> None:
        """An object that was in the data bucket before the scene starts: no Object Created event is
        sent for it, and it has the version id an event names (S3 picks version ids on upload; this
        stands in for an upload made earlier, so a sample event can be run exactly as written)."""
        obj = s3_backends[ACCOUNT_ID]["aws"].put_object(self.bucket, key, body, disable_notification=True)
        if version_id is not None:
            obj._version_id = version_id  # moto 5.2.5: FakeKey.version_id reads it

    def invoke(self, function: str, event: Any) -> Any:
        """Invoke a template function synchronously (the Docker-free `sam local invoke`)."""
        return self.router.invoke(function, event)

    # -- async delivery (EventBridge, S3, Scheduler → Lambda) -------------------------------------------

    def _deliver(self, rule: str, target: dict[str, Any], event: dict[str, Any]) -> None:
        delivery = Delivery(rule, target, event)
        self.delivered.append(delivery)
        # EventBridge's work, not the caller's: a fresh context, whoever's call emitted the event.
        future = self._async.submit(contextvars.Context().run, self._invoke_async, delivery)
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def redeliver(self, index: int = -1) -> None:
        """Deliver an event again, as EventBridge's at-least-once delivery sometimes does."""
        delivery = self.delivered[index]
        self._deliver(delivery.rule, delivery.target, delivery.event)

    def _forget(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def _invoke_async(self, delivery: Delivery) -> None:
        if ":states:" in delivery.target["Arn"]:
            self.client("stepfunctions").start_execution(stateMachineArn=delivery.target["Arn"],
                                                         name=str(uuid.uuid4()), input=json.dumps(delivery.event))
            return
        self.lambda_async.from_rule(delivery.rule, delivery.target, delivery.event)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """Events that could not be delivered or processed, whatever their dead-letter queue."""
        return self.lambda_async.dead_letters

    # -- waiting ---------------------------------------------------------------------------------------

    def busy(self) -> dict[str, int]:
        with self._pending_lock:
            pending = sum(1 for f in self._pending if not f.done())
        # Read from moto's engine, not through ListExecutions: wait_idle asks every poll, and each API call
        # (serialised, audited) took CPU from the jobs it waits for.
        running = len(stepfunctions_parser_backends[ACCOUNT_ID][REGION]._get_executions(ExecutionStatus.RUNNING))
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

    @contextlib.contextmanager
    def as_function(self, name: str) -> Iterator[None]:
        """This thread sees `name`'s environment, as code running inside that function would."""
        with os.environ.overlay(self.router.spec(name).environment):  # type: ignore[attr-defined]
            yield
