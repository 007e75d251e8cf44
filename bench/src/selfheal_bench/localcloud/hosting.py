"""SageMaker real-time hosting on this machine: models, endpoint configs, endpoints, and InvokeEndpoint.

moto completes endpoints at once, lacks UpdateEndpoint and answers invokes with a canned body. Here an
endpoint's model runs in its own serving container (serving.py): SageMaker extracts model.tar.gz into
/opt/ml/model, the real script-mode toolkit finds and fetches the code as the XGBoost container does (no route
to AWS under network isolation), and the real serving toolkit answers each invocation with its own statuses.
Its lifecycle is botocore's EndpointStatus (endpoint_rules.py: what each status accepts), a fleet launching in
simulated minutes (clock.py); UpdateEndpoint is blue/green: the old config serves until the new one has
launched, loaded, taken its canary share and baked under the rollback alarms (evaluated as CloudWatch would,
endpoint_metrics.py); an alarm, a failed health check or MaximumExecutionTimeoutInSeconds puts it back
InService on the old config with FailureReason set, as SageMaker does, and a failed rollback leaves
UpdateRollbackFailed. Data capture writes SageMaker's format under <DestinationS3Uri>/<endpoint>/<variant>/
yyyy/mm/dd/hh/, with the request's InferenceId as eventMetadata.inferenceId.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import tarfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from moto.core.exceptions import ServiceException

from .clock import Clock
from .container import ContainerStartFailed, container_env, start_user_code
from .endpoint_metrics import FleetMetrics, VariantMetrics, evaluate, rollback_alarms
from .endpoint_rules import IN_PROGRESS, MAX_EXECUTION_SECONDS, check_deletable, check_deployment, check_updatable
from .faults import Faults
from .s3_data import fetch_code, split_s3_uri
from .sagemaker_jobs import ValidationException, api_fault, validate_request
from .serving import SERVERS, ContainerAnswer, ContainerTimedOut, ContainerUnhealthy, ServingContainer

_CAPTURE_FLUSH_RECORDS = 200
# Simulated seconds a fleet takes to launch (before its container starts), 15 minutes under the
# endpoint:slow_start fault, and to delete. AWS gives no figure: endpoints take minutes either way.
LAUNCH_SECONDS, SLOW_LAUNCH_SECONDS, DELETE_SECONDS = 300, 900, 60
_TIMED_OUT = "the deployment ran out of MaximumExecutionTimeoutInSeconds"
_EVALUATION_SECONDS = 10  # simulated seconds between evaluations of the rollback alarms while baking


class ModelError(ServiceException):
    """InvokeEndpoint's answer when the container answered with an error (HTTP 424), carrying the
    container's own status: what its serving toolkit answered, 4xx or 5xx."""

    code = "ModelError"

    def __init__(self, status: int, message: str) -> None:
        kind = "client" if 400 <= status < 500 else "server"
        super().__init__(f"Received {kind} error ({status}) from primary with message \"{message}\".")
        self.original_status_code = status
        self.original_message = message


# InvokeEndpoint's ModelError when the container does not answer in time (status 0: no HTTP answer at all).
_INVOCATION_TIMED_OUT = ("Your invocation timed out while waiting for a response from container primary. "
                         "Review the latency metrics for each container in Amazon CloudWatch, resolve the issue, "
                         "and try again.")


@dataclass
class LoadedModel:
    """One production variant's model, served by its own container."""

    name: str
    container: ServingContainer
    fail_every_request: bool = False

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> ContainerAnswer:
        return self.container.invoke(body, content_type, accept, fault=self.fail_every_request)


@dataclass
class Endpoint:
    name: str
    arn: str
    config_name: str
    metrics: FleetMetrics  # "<config>/<variant>" -> that fleet's requests
    status: str = "Creating"
    failure_reason: str | None = None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    serving: dict[str, LoadedModel] = field(default_factory=dict)  # variant -> model (blue)
    green: dict[str, LoadedModel] | None = None
    green_config: str | None = None
    green_share: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    last_deployment_config: dict[str, Any] | None = None
    requests: int = 0


class HostingService:
    def __init__(self, work_dir: Path, faults: Faults, region: str, account_id: str, clock: Clock,
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._work_dir = work_dir / "endpoints"
        self._faults = faults
        self._region = region
        self._account = account_id
        self._clock = clock
        self._now = now  # the calendar time a capture record is stamped with (a backtest simulates it)
        self._lock = threading.RLock()
        self._capture: dict[str, list[str]] = {}
        self._threads: list[threading.Thread] = []
        self._containers: weakref.WeakSet[ServingContainer] = weakref.WeakSet()
        SERVERS.warm(container_env(self._work_dir / "spare-home", region))  # a model server ready when needed

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self._region}:{self._account}:{kind}/{name.lower()}"

    # -- models and configs ---------------------------------------------------------------------------

    def create_model(self, request: dict[str, Any]) -> str:
        validate_request("CreateModel", request)
        name = request["ModelName"]
        if name in self.models:
            raise ValidationException(f"Cannot create already existing model \"{self._arn('model', name)}\".")
        self.models[name] = request | {"ModelArn": self._arn("model", name),
                                       "CreationTime": dt.datetime.now(dt.UTC)}
        return self.models[name]["ModelArn"]

    def create_endpoint_config(self, request: dict[str, Any]) -> str:
        validate_request("CreateEndpointConfig", request)
        name = request["EndpointConfigName"]
        if name in self.configs:
            raise ValidationException(f"Cannot create already existing endpoint configuration "
                                      f"\"{self._arn('endpoint-config', name)}\".")
        for variant in request["ProductionVariants"]:
            if variant["ModelName"] not in self.models:
                raise ValidationException(f"Could not find model \"{self._arn('model', variant['ModelName'])}\".")
        self.configs[name] = request | {"EndpointConfigArn": self._arn("endpoint-config", name),
                                        "CreationTime": dt.datetime.now(dt.UTC)}
        return self.configs[name]["EndpointConfigArn"]

    def describe(self, store: dict[str, dict[str, Any]], name: str, kind: str) -> dict[str, Any]:
        if name not in store:
            raise ValidationException(f"Could not find {kind} \"{self._arn(kind, name)}\".")
        return {k: v for k, v in store[name].items() if k != "Tags"}

    # -- endpoints ---------------------------------------------------------------------------------------

    def create_endpoint(self, request: dict[str, Any]) -> str:
        validate_request("CreateEndpoint", request)
        fault = self._faults.take("sagemaker:CreateEndpoint")
        if fault:
            raise api_fault(fault.kind, "CreateEndpoint")
        name, config = request["EndpointName"], request["EndpointConfigName"]
        with self._lock:
            if name in self.endpoints:  # Deleting included: the name is free once the endpoint is gone
                raise ValidationException(f"Cannot create already existing endpoint \"{self._arn('endpoint', name)}\".")
            self.describe(self.configs, config, "endpoint-config")
            endpoint = self.endpoints[name] = Endpoint(name, self._arn("endpoint", name), config,
                                                       FleetMetrics(self._clock))
        self._background(self._create, endpoint)
        return endpoint.arn

    def update_endpoint(self, request: dict[str, Any]) -> str:
        validate_request("UpdateEndpoint", request)
        fault = self._faults.take("sagemaker:UpdateEndpoint")
        if fault:
            raise api_fault(fault.kind, "UpdateEndpoint")
        endpoint = self._endpoint(request["EndpointName"])
        new_config = request["EndpointConfigName"]
        self.describe(self.configs, new_config, "endpoint-config")
        deployment = request.get("DeploymentConfig") or {}
        with self._lock:
            check_updatable(endpoint.arn, endpoint.status)
            if deployment:
                check_deployment(self.configs[endpoint.config_name], self.configs[new_config], deployment,
                                 {a["AlarmName"] for a in rollback_alarms(self._region, deployment)})
            endpoint.status, endpoint.failure_reason = "Updating", None
            endpoint.modified = dt.datetime.now(dt.UTC)
            endpoint.last_deployment_config = deployment or None
        self._background(self._update, endpoint, new_config, deployment)
        return endpoint.arn

    def delete_endpoint(self, name: str) -> None:
        endpoint = self._endpoint(name)
        with self._lock:
            check_deletable(endpoint.arn, endpoint.status)
            endpoint.status, endpoint.modified = "Deleting", dt.datetime.now(dt.UTC)
        self.flush_capture()
        self._background(self._delete, endpoint)

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        endpoint = self._endpoint(name)
        config = self.configs[endpoint.config_name]
        out: dict[str, Any] = {
            "EndpointName": endpoint.name, "EndpointArn": endpoint.arn, "EndpointConfigName": endpoint.config_name,
            "EndpointStatus": endpoint.status, "CreationTime": endpoint.created, "LastModifiedTime": endpoint.modified,
            "ProductionVariants": [{
                "VariantName": v["VariantName"], "CurrentWeight": float(v.get("InitialVariantWeight", 1.0)),
                "DesiredWeight": float(v.get("InitialVariantWeight", 1.0)),
                "CurrentInstanceCount": v.get("InitialInstanceCount", 1),
                "DesiredInstanceCount": v.get("InitialInstanceCount", 1),
                "DeployedImages": [{"SpecifiedImage": self._container(v["ModelName"]).get("Image", "")}],
            } for v in config["ProductionVariants"]],
        }
        capture = config.get("DataCaptureConfig")
        if capture:
            out["DataCaptureConfig"] = {"EnableCapture": capture.get("EnableCapture", True), "CaptureStatus": "Started",
                                        "CurrentSamplingPercentage": capture["InitialSamplingPercentage"],
                                        "DestinationS3Uri": capture["DestinationS3Uri"],
                                        **({"KmsKeyId": capture["KmsKeyId"]} if "KmsKeyId" in capture else {})}
        if endpoint.failure_reason:
            out["FailureReason"] = endpoint.failure_reason
        if endpoint.last_deployment_config:
            out["LastDeploymentConfig"] = endpoint.last_deployment_config
        return out

    def _endpoint(self, name: str) -> Endpoint:
        if name not in self.endpoints:
            raise ValidationException(f"Could not find endpoint \"{self._arn('endpoint', name)}\".")
        return self.endpoints[name]

    @property
    def busy(self) -> int:
        return sum(1 for e in self.endpoints.values() if e.status in IN_PROGRESS)

    def published(self) -> list[tuple[dict[str, str], VariantMetrics]]:  # what moto's CloudWatch lists
        with self._lock:
            endpoints = list(self.endpoints.values())
        return [pair for e in endpoints for pair in e.metrics.dimensions(e.name)]

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def _background(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"endpoint-{args[0].name}")
        self._threads.append(thread)
        thread.start()

    def _launch(self, config_name: str) -> dict[str, LoadedModel]:
        """A new fleet: its instances launch (simulated minutes), then its containers load the model (real work)."""
        slow = self._faults.take("endpoint:slow_start")
        self._clock.sleep(SLOW_LAUNCH_SECONDS if slow else LAUNCH_SECONDS)
        with self._clock.real_work():
            return self._load_config(config_name, fault="endpoint:unhealthy")

    def _create(self, endpoint: Endpoint) -> None:
        try:
            endpoint.serving = self._launch(endpoint.config_name)
        except Exception as exc:
            endpoint.status, endpoint.failure_reason = "Failed", f"ClientError: the model failed to load: {exc}"
            return
        endpoint.status = "InService"
        endpoint.history.append({"config": endpoint.config_name, "outcome": "created"})

    def _delete(self, endpoint: Endpoint) -> None:
        self._clock.sleep(DELETE_SECONDS)
        with self._lock:
            del self.endpoints[endpoint.name]

    def _update(self, endpoint: Endpoint, new_config: str, deployment: dict[str, Any]) -> None:
        policy = deployment.get("BlueGreenUpdatePolicy", {})
        deadline = self._clock.now() + policy.get("MaximumExecutionTimeoutInSeconds", MAX_EXECUTION_SECONDS)
        try:
            green = self._launch(new_config)
        except Exception as exc:
            return self._roll_back(endpoint, new_config, f"the new model failed its health check: {exc}")
        if self._faults.take("endpoint:update_failed"):
            return self._fail(endpoint, "Failed", "the update failed and took the serving fleet down (injected fault)")
        if self._clock.now() > deadline:
            return self._roll_back(endpoint, new_config, _TIMED_OUT)
        routing = policy.get("TrafficRoutingConfiguration", {"Type": "ALL_AT_ONCE"})
        alarms = rollback_alarms(self._region, deployment)
        endpoint.green, endpoint.green_config = green, new_config
        if routing["Type"] in {"CANARY", "LINEAR"}:
            size = (routing.get("CanarySize") or routing.get("LinearStepSize")
                    or {"Type": "CAPACITY_PERCENT", "Value": 10})
            endpoint.green_share = size["Value"] / 100 if size["Type"] == "CAPACITY_PERCENT" else 0.5
            if not self._bake(endpoint, routing.get("WaitIntervalInSeconds", 0), alarms, deadline):
                return
        endpoint.green_share = 1.0
        if not self._bake(endpoint, policy.get("TerminationWaitInSeconds", 0), alarms, deadline):
            return
        with self._lock:
            endpoint.serving, endpoint.config_name = green, new_config
            endpoint.green, endpoint.green_config, endpoint.green_share = None, None, 0.0
            endpoint.status, endpoint.modified = "InService", dt.datetime.now(dt.UTC)
        endpoint.history.append({"config": new_config, "outcome": "deployed"})

    def _bake(self, endpoint: Endpoint, seconds: float, alarms: list[dict[str, Any]], deadline: float) -> bool:
        """Serve the current split for `seconds` (simulated), watching the rollback alarms as CloudWatch
        evaluates them. False, rolled back, when one goes into ALARM or the deployment runs out of time."""
        end = self._clock.now() + seconds
        while True:
            now = self._clock.now()
            fired = next((a["AlarmName"] for a in alarms
                          if evaluate(a, endpoint.name, endpoint.metrics, now).in_alarm), None)
            why = f"alarm {fired} went into ALARM" if fired else _TIMED_OUT if now > deadline else None
            if why:
                self._roll_back(endpoint, endpoint.green_config or "", why)
                return False
            if now >= end:
                return True
            self._clock.sleep(min(_EVALUATION_SECONDS, end - now))

    def _roll_back(self, endpoint: Endpoint, new_config: str, why: str) -> None:
        if self._faults.take("endpoint:rollback_failed"):
            return self._fail(endpoint, "UpdateRollbackFailed", f"{why}; the rollback failed too (injected fault)")
        with self._lock:
            endpoint.green, endpoint.green_config, endpoint.green_share = None, None, 0.0
            endpoint.failure_reason = f"Update failed and was rolled back: {why}"
            endpoint.status, endpoint.modified = "InService", dt.datetime.now(dt.UTC)
        endpoint.history.append({"config": new_config, "outcome": "rolled_back", "reason": why})

    def _fail(self, endpoint: Endpoint, status: str, why: str) -> None:  # Failed, or UpdateRollbackFailed
        with self._lock:
            if status == "Failed":
                endpoint.serving = {}
            endpoint.green, endpoint.green_config, endpoint.green_share = None, None, 0.0
            endpoint.status, endpoint.failure_reason, endpoint.modified = status, why, dt.datetime.now(dt.UTC)
        endpoint.history.append({"outcome": status, "reason": why})

    # -- models in memory ------------------------------------------------------------------------------------

    def _container(self, model_name: str) -> dict[str, Any]:
        model = self.models[model_name]
        container = model.get("PrimaryContainer") or model["Containers"][0]
        if "ModelPackageName" in container:
            package = boto3.client("sagemaker", region_name=self._region).describe_model_package(
                ModelPackageName=container["ModelPackageName"])
            served = package["InferenceSpecification"]["Containers"][0]
            return served | {"Environment": served.get("Environment", {}) | container.get("Environment", {})}
        return container

    def _load_config(self, config_name: str, fault: str) -> dict[str, LoadedModel]:
        loaded = {}
        for variant in self.configs[config_name]["ProductionVariants"]:
            if self._faults.take(fault):
                raise RuntimeError("injected fault: the container failed its /ping health check")
            loaded[variant["VariantName"]] = self._load_model(variant["ModelName"])
            if self._faults.take("endpoint:model_errors"):
                loaded[variant["VariantName"]].fail_every_request = True
        return loaded

    def _load_model(self, model_name: str) -> LoadedModel:
        """Start the model's container as SageMaker does: the model artifacts extracted into /opt/ml/model, then
        the framework's start-up (the script-mode toolkit fetches the code), then the model server."""
        container = self._container(model_name)
        isolated = bool(self.models[model_name].get("EnableNetworkIsolation", False))
        sandbox = self._work_dir / f"{model_name}-{uuid.uuid4().hex[:8]}"
        root = sandbox / "opt_ml"
        (root / "model").mkdir(parents=True)
        bucket, key = split_s3_uri(container["ModelDataUrl"])
        body = boto3.client("s3", region_name=self._region).get_object(Bucket=bucket, Key=key)["Body"].read()
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            tar.extractall(root / "model", filter="data")
        env = container_env(sandbox / "home", self._region) | container.get("Environment", {})
        log = sandbox / "container.log"
        fetched = fetch_code(env.get("SAGEMAKER_SUBMIT_DIRECTORY", ""), sandbox, isolated)
        try:
            started = start_user_code("serving", root, env, log, fetched)
        except ContainerStartFailed as failed:  # the serving process exits before it ever answers /ping
            raise ContainerUnhealthy(f"the container's start-up failed: {failed.failure}") from failed
        if not started.user_entry_point:
            raise ContainerUnhealthy("no SAGEMAKER_PROGRAM: the XGBoost container would serve its built-in "
                                     "algorithm, which the local cloud does not run")
        serving = SERVERS.start(started.code_dir, root / "model", env, log)
        self._containers.add(serving)
        return LoadedModel(model_name, serving)

    def shutdown(self) -> None:
        """Stop every serving container still running."""
        for serving in list(self._containers):
            serving.stop()

    # -- invocations -------------------------------------------------------------------------------------------

    def invoke(self, name: str, body: bytes, content_type: str | None, accept: str | None,
               inference_id: str | None = None) -> tuple[bytes, str | None, str]:
        if inference_id is not None:
            _check_inference_id(inference_id)
        endpoint = self._endpoint(name)
        if endpoint.status not in {"InService", "Updating"} or not endpoint.serving:
            raise ValidationException(f"Endpoint {name} of account {self._account} not found or not InService.")
        with self._lock:
            endpoint.requests += 1
            use_green = endpoint.green is not None and (endpoint.requests % 100) < endpoint.green_share * 100
            models, config = ((endpoint.green, endpoint.green_config) if use_green
                              else (endpoint.serving, endpoint.config_name))
        variant, model = next(iter(models.items()))  # type: ignore[union-attr]
        stats = endpoint.metrics.setdefault(f"{config}/{variant}", VariantMetrics())
        stats.invocations += 1
        started = time.perf_counter()
        try:
            answer = model.predict(body, content_type, accept)
        except ContainerTimedOut as exc:
            stats.errors_5xx += 1
            raise ModelError(0, _INVOCATION_TIMED_OUT) from exc
        # The container's own status decides (its serving toolkit's rule), and so what CloudWatch counts.
        if answer.status >= 500:
            stats.errors_5xx += 1
        elif answer.status >= 400:
            stats.errors_4xx += 1
        if answer.status >= 300:
            raise ModelError(answer.status, answer.body.decode("utf-8", errors="replace"))
        stats.latency_ms.append((time.perf_counter() - started) * 1000)
        out_type = answer.content_type or "application/octet-stream"
        self._capture_record(endpoint, str(config), variant, body, content_type or "", answer.body, out_type,
                             inference_id)
        return answer.body, out_type, variant

    def _capture_record(self, endpoint: Endpoint, config_name: str, variant: str, body: bytes, content_type: str,
                        out: bytes, out_type: str, inference_id: str | None) -> None:
        capture = self.configs[config_name].get("DataCaptureConfig")
        if not capture or not capture.get("EnableCapture", True):
            return
        if (endpoint.requests % 100) >= capture["InitialSamplingPercentage"]:
            return
        now = self._now()
        metadata = {"eventId": str(uuid.uuid4()), **({"inferenceId": inference_id} if inference_id else {}),
                    "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        record = {"captureData": {"endpointInput": _captured(body, content_type, "INPUT"),
                                  "endpointOutput": _captured(out, out_type, "OUTPUT")},
                  "eventMetadata": metadata, "eventVersion": "0"}
        prefix = f"{capture['DestinationS3Uri'].rstrip('/')}/{endpoint.name}/{variant}/{now:%Y/%m/%d/%H}"
        with self._lock:
            lines = self._capture.setdefault(prefix, [])
            lines.append(json.dumps(record))
            if len(lines) >= _CAPTURE_FLUSH_RECORDS:
                self._write_capture(prefix, self._capture.pop(prefix))

    def flush_capture(self) -> None:
        with self._lock:
            pending, self._capture = self._capture, {}
        for prefix, lines in pending.items():
            self._write_capture(prefix, lines)

    def _write_capture(self, prefix: str, lines: list[str]) -> None:
        bucket, key_prefix = split_s3_uri(prefix)
        key = f"{key_prefix}/{dt.datetime.now(dt.UTC):%M-%S-%f}-{uuid.uuid4().hex[:8]}.jsonl"
        boto3.client("s3", region_name=self._region).put_object(Bucket=bucket, Key=key,
                                                                Body=("\n".join(lines) + "\n").encode())


def _captured(data: bytes, content_type: str, mode: str) -> dict[str, str]:
    text_types = {"text/csv": "CSV", "application/json": "JSON"}
    encoding = text_types.get(content_type.split(";")[0].strip())
    payload = data.decode("utf-8") if encoding else base64.b64encode(data).decode()
    return {"observedContentType": content_type, "mode": mode, "data": payload, "encoding": encoding or "BASE64"}




def _check_inference_id(inference_id: str) -> None:
    """InvokeEndpoint's InferenceId as botocore's model constrains it: 1 to 64 printable characters, the first
    not a space (min 1, max 64, pattern \\A\\S[\\p{Print}]*\\z)."""
    if not 1 <= len(inference_id) <= 64 or not inference_id.isprintable() or inference_id[0].isspace():
        raise ValidationException(f"1 validation error detected: Value '{inference_id}' at 'inferenceId' failed to "
                                  "satisfy constraint: Member must satisfy regular expression pattern: "
                                  "\\A\\S[\\p{Print}]*\\z and length between 1 and 64")
