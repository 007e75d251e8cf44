"""SageMaker real-time hosting on this machine: models, endpoint configs, endpoints, and InvokeEndpoint.

moto completes endpoints at once, lacks UpdateEndpoint and answers invokes with a canned body. Here:
* an endpoint's model runs in its own serving container (serving.py): SageMaker extracts model.tar.gz into
  /opt/ml/model, the real script-mode toolkit finds and fetches the code as the XGBoost container does (no route
  to AWS under network isolation), and the real serving toolkit answers each invocation, with its own statuses;
* CreateEndpoint goes Creating → InService (or Failed when the model cannot load);
* UpdateEndpoint is blue/green: the old config serves until the new one has loaded, taken its canary
  share of traffic for the wait interval and baked, with the auto-rollback alarms evaluated on the
  endpoint's own metrics; any failure puts the endpoint back InService on the old config with
  FailureReason set, as SageMaker does;
* data capture writes SageMaker's capture format under <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/.
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
from moto.core.responses import ActionResult, EmptyResult
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from .container import ContainerStartFailed, container_env, start_user_code
from .faults import Faults
from .sagemaker_jobs import ValidationException, api_fault, fetch_code, split_s3_uri, validate_request
from .serving import SERVERS, ContainerAnswer, ContainerTimedOut, ContainerUnhealthy, ServingContainer

_CAPTURE_FLUSH_RECORDS = 200


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
_TIMED_OUT = ("Your invocation timed out while waiting for a response from container primary. Review the latency "
              "metrics for each container in Amazon CloudWatch, resolve the issue, and try again.")


@dataclass
class LoadedModel:
    """One production variant's model, served by its own container."""

    name: str
    container: ServingContainer
    fail_every_request: bool = False

    def predict(self, body: bytes, content_type: str | None, accept: str | None) -> ContainerAnswer:
        return self.container.invoke(body, content_type, accept, fault=self.fail_every_request)


@dataclass
class VariantMetrics:
    invocations: int = 0
    errors_5xx: int = 0
    errors_4xx: int = 0
    latency_ms: list[float] = field(default_factory=list)


@dataclass
class Endpoint:
    name: str
    arn: str
    config_name: str
    status: str = "Creating"
    failure_reason: str | None = None
    created: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    modified: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    serving: dict[str, LoadedModel] = field(default_factory=dict)  # variant -> model (blue)
    green: dict[str, LoadedModel] | None = None
    green_config: str | None = None
    green_share: float = 0.0
    metrics: dict[str, VariantMetrics] = field(default_factory=dict)  # "<config>/<variant>" -> metrics
    history: list[dict[str, Any]] = field(default_factory=list)
    last_deployment_config: dict[str, Any] | None = None
    requests: int = 0


class HostingService:
    def __init__(self, work_dir: Path, faults: Faults, region: str, account_id: str, time_scale: float) -> None:
        self.models: dict[str, dict[str, Any]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self._work_dir = work_dir / "endpoints"
        self._faults = faults
        self._region = region
        self._account = account_id
        self._time_scale = time_scale
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
        if name in self.endpoints:
            raise ValidationException(f"Cannot create already existing endpoint \"{self._arn('endpoint', name)}\".")
        self.describe(self.configs, config, "endpoint-config")
        endpoint = self.endpoints[name] = Endpoint(name, self._arn("endpoint", name), config)
        self._background(self._create, endpoint)
        return endpoint.arn

    def update_endpoint(self, request: dict[str, Any]) -> str:
        validate_request("UpdateEndpoint", request)
        fault = self._faults.take("sagemaker:UpdateEndpoint")
        if fault:
            raise api_fault(fault.kind, "UpdateEndpoint")
        endpoint = self._endpoint(request["EndpointName"])
        self.describe(self.configs, request["EndpointConfigName"], "endpoint-config")
        if endpoint.status != "InService":
            raise ValidationException(f"Cannot update in-progress endpoint \"{endpoint.arn}\".")
        endpoint.status, endpoint.failure_reason = "Updating", None
        endpoint.modified = dt.datetime.now(dt.UTC)
        endpoint.last_deployment_config = request.get("DeploymentConfig")
        self._background(self._update, endpoint, request["EndpointConfigName"], request.get("DeploymentConfig") or {})
        return endpoint.arn

    def delete_endpoint(self, name: str) -> None:
        self._endpoint(name)
        self.flush_capture()
        del self.endpoints[name]

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
        return sum(1 for e in self.endpoints.values() if e.status in {"Creating", "Updating", "RollingBack"})

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def _background(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"endpoint-{args[0].name}")
        self._threads.append(thread)
        thread.start()

    def _create(self, endpoint: Endpoint) -> None:
        try:
            endpoint.serving = self._load_config(endpoint.config_name, fault="endpoint:unhealthy")
        except Exception as exc:
            endpoint.status, endpoint.failure_reason = "Failed", f"ClientError: the model failed to load: {exc}"
            return
        endpoint.status = "InService"
        endpoint.history.append({"config": endpoint.config_name, "outcome": "created"})

    def _update(self, endpoint: Endpoint, new_config: str, deployment: dict[str, Any]) -> None:
        try:
            green = self._load_config(new_config, fault="endpoint:unhealthy")
        except Exception as exc:
            return self._roll_back(endpoint, new_config, f"the new model failed its health check: {exc}")
        policy = deployment.get("BlueGreenUpdatePolicy", {})
        routing = policy.get("TrafficRoutingConfiguration", {"Type": "ALL_AT_ONCE"})
        alarms = [a["AlarmName"] for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])]
        endpoint.green, endpoint.green_config = green, new_config
        if routing["Type"] in {"CANARY", "LINEAR"}:
            size = (routing.get("CanarySize") or routing.get("LinearStepSize")
                    or {"Type": "CAPACITY_PERCENT", "Value": 10})
            endpoint.green_share = size["Value"] / 100 if size["Type"] == "CAPACITY_PERCENT" else 0.5
            if not self._bake(endpoint, routing.get("WaitIntervalInSeconds", 0), alarms):
                return
        endpoint.green_share = 1.0
        if not self._bake(endpoint, policy.get("TerminationWaitInSeconds", 0), alarms):
            return
        with self._lock:
            endpoint.serving, endpoint.config_name = green, new_config
            endpoint.green, endpoint.green_config, endpoint.green_share = None, None, 0.0
            endpoint.status, endpoint.modified = "InService", dt.datetime.now(dt.UTC)
        endpoint.history.append({"config": new_config, "outcome": "deployed"})

    def _bake(self, endpoint: Endpoint, seconds: float, alarms: list[str]) -> bool:
        """Serve the current split for `seconds` (scaled) while watching the rollback alarms."""
        deadline = time.monotonic() + seconds * self._time_scale
        while True:
            fired = self._alarm_fired(endpoint, alarms)
            if fired:
                self._roll_back(endpoint, endpoint.green_config or "", f"alarm {fired} went into ALARM")
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _roll_back(self, endpoint: Endpoint, new_config: str, why: str) -> None:
        with self._lock:
            endpoint.green, endpoint.green_config, endpoint.green_share = None, None, 0.0
            endpoint.failure_reason = f"Update failed and was rolled back: {why}"
            endpoint.status, endpoint.modified = "InService", dt.datetime.now(dt.UTC)
        endpoint.history.append({"config": new_config, "outcome": "rolled_back", "reason": why})

    def _alarm_fired(self, endpoint: Endpoint, alarms: list[str]) -> str | None:
        """Evaluate each rollback alarm on the green variant's own metrics, as CloudWatch would."""
        if not alarms or not endpoint.green_config:
            return None
        described = boto3.client("cloudwatch", region_name=self._region).describe_alarms(AlarmNames=alarms)
        for alarm in described["MetricAlarms"]:
            values = [self._metric_value(endpoint, alarm["MetricName"], alarm.get("Statistic", "Sum"), variant)
                      for variant in endpoint.green or {}]
            if any(v is not None and _breaches(v, alarm["ComparisonOperator"], alarm["Threshold"]) for v in values):
                return alarm["AlarmName"]
        return None

    def _metric_value(self, endpoint: Endpoint, metric: str, statistic: str, variant: str) -> float | None:
        stats = endpoint.metrics.get(f"{endpoint.green_config}/{variant}")
        if stats is None or stats.invocations == 0:
            return None
        if metric == "Invocation5XXErrors":
            return stats.errors_5xx if statistic == "Sum" else stats.errors_5xx / stats.invocations
        if metric == "Invocation4XXErrors":
            return stats.errors_4xx if statistic == "Sum" else stats.errors_4xx / stats.invocations
        if metric == "ModelLatency":  # CloudWatch reports it in microseconds
            # Only answered requests have a latency: none yet (in flight, or all failed) is no data point.
            latencies = sorted(stats.latency_ms)
            if not latencies:
                return None
            return latencies[len(latencies) // 2] * 1000 if statistic != "Maximum" else latencies[-1] * 1000
        return None

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

    def invoke(self, name: str, body: bytes, content_type: str | None,
               accept: str | None) -> tuple[bytes, str | None, str]:
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
            raise ModelError(0, _TIMED_OUT) from exc
        # The container's own status decides (its serving toolkit's rule), and so what CloudWatch counts.
        if answer.status >= 500:
            stats.errors_5xx += 1
        elif answer.status >= 400:
            stats.errors_4xx += 1
        if answer.status >= 300:
            raise ModelError(answer.status, answer.body.decode("utf-8", errors="replace"))
        stats.latency_ms.append((time.perf_counter() - started) * 1000)
        out_type = answer.content_type or "application/octet-stream"
        self._capture_record(endpoint, str(config), variant, body, content_type or "", answer.body, out_type)
        return answer.body, out_type, variant

    def _capture_record(self, endpoint: Endpoint, config_name: str, variant: str, body: bytes, content_type: str,
                        out: bytes, out_type: str) -> None:
        capture = self.configs[config_name].get("DataCaptureConfig")
        if not capture or not capture.get("EnableCapture", True):
            return
        if (endpoint.requests % 100) >= capture["InitialSamplingPercentage"]:
            return
        now = dt.datetime.now(dt.UTC)
        record = {"captureData": {"endpointInput": _captured(body, content_type, "INPUT"),
                                  "endpointOutput": _captured(out, out_type, "OUTPUT")},
                  "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
                  "eventVersion": "0"}
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


def _breaches(value: float, operator: str, threshold: float) -> bool:
    return {"GreaterThanThreshold": value > threshold, "GreaterThanOrEqualToThreshold": value >= threshold,
            "LessThanThreshold": value < threshold, "LessThanOrEqualToThreshold": value <= threshold}[operator]


def patch_moto_hosting(service: HostingService) -> Callable[[], None]:
    """Point moto's SageMaker hosting operations and runtime InvokeEndpoint at the service."""

    def body(self: Any) -> dict[str, Any]:
        return json.loads(self.body)

    handlers: dict[str, Callable[[Any], Any]] = {
        "create_model": lambda self: ActionResult({"ModelArn": service.create_model(body(self))}),
        "describe_model": lambda self: ActionResult(service.describe(service.models, self._get_param("ModelName"),
                                                                     "model")),
        "create_endpoint_config": lambda self: ActionResult(
            {"EndpointConfigArn": service.create_endpoint_config(body(self))}),
        "describe_endpoint_config": lambda self: ActionResult(
            service.describe(service.configs, self._get_param("EndpointConfigName"), "endpoint-config")),
        "create_endpoint": lambda self: ActionResult({"EndpointArn": service.create_endpoint(body(self))}),
        "update_endpoint": lambda self: ActionResult({"EndpointArn": service.update_endpoint(body(self))}),
        "describe_endpoint": lambda self: ActionResult(service.describe_endpoint(self._get_param("EndpointName"))),
        "delete_endpoint": lambda self: (service.delete_endpoint(self._get_param("EndpointName")), EmptyResult())[1],
    }
    originals = {name: SageMakerResponse.__dict__.get(name) for name in handlers}
    for name, handler in handlers.items():
        setattr(SageMakerResponse, name, handler)

    original_invoke = SageMakerRuntimeResponse.invoke_endpoint

    def invoke_endpoint(self: SageMakerRuntimeResponse) -> Any:
        name = self.path.split("/")[2]
        # The container gets the client's headers as sent: an absent one stays absent (the toolkit has defaults).
        out, out_type, variant = service.invoke(name, self.body if isinstance(self.body, bytes) else self.body.encode(),
                                                self.headers.get("Content-Type"), self.headers.get("Accept"))
        return 200, {"Content-Type": out_type, "x-Amzn-Invoked-Production-Variant": variant}, out

    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint  # type: ignore[method-assign]

    def undo() -> None:
        for name, handler in originals.items():
            if handler is None:
                delattr(SageMakerResponse, name)
            else:
                setattr(SageMakerResponse, name, handler)
        SageMakerRuntimeResponse.invoke_endpoint = original_invoke  # type: ignore[method-assign]

    return undo
