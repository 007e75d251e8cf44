"""What selfheal survives, tried on the local cloud and measured.

Each scenario runs on a LocalCloud it is given and returns what it observed, with `problems()`: the
promises that did not hold, in an operator's words (empty when everything held).

- `serving_story`: one model's life under faults. Transient faults on every layer are retried away;
  permanent ones fail the run cleanly; every kind of failed rollout happens while a client keeps
  sending traffic; the monitor schedule fires twice and an approval event arrives three times.
- `burst`: uploads across five models within seconds, a fifth of them redelivered.
- `storm`: a monitor that reports violations every few minutes for hours of simulated time.
- `hostile_uploads`, `hostile_events`, `hostile_payloads`: bad data, keys, events and requests.
- `crash_in_ingest`, `crash_in_pipeline`: functions that die after their side effects;
  `throttle_in_pipeline`: a pipeline function's write throttled past the SDK's retries.

tests/reliability/ asserts on these; `python -m selfheal.reliability [--full]` runs them all, prints
the figures and writes them to out/reliability.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from .console import library_logs_to
from .datagen import churn_frame
from .localcloud import LocalCloud
from .localcloud.faults import describe
from .localcloud.lambdas import FunctionError
from .report import build_report, endpoint_name, executions, ledger_items
from .simclock import SimulatedClock, simulated_time

MB = 1024 * 1024
IDLE_TIMEOUT = 600  # seconds: a bound on every wait, far above what any step takes here
ROWS = 1500  # per uploaded dataset: enough for the gate's AUC threshold
MODEL = "churn"
STORY_CONFIG: dict[str, Any] = {
    "target": "churned",
    "problem": "binary",
    "metric": {"name": "auc", "threshold": 0.75},
    "hyperparameters": {"num_round": 40, "max_depth": 4},
    "validation": {"min_rows": 50},
    # Each run trains on its own upload; a hung training job is stopped after a minute.
    "training": {"window": {"mode": "latest"}, "spot": {"max_runtime_seconds": 60}},
    "retrain": {"on_violation": "retrain", "window": {"mode": "latest"}},
}


@dataclass(frozen=True)
class Sizes:
    """How big the scenarios are: quick for `make test`, full for the published figures."""

    name: str
    burst_uploads: int  # deliveries, a fifth of them redeliveries of earlier ones
    storm_hours: int
    storm_tick_minutes: int
    burst_trains: bool  # the burst's runs train for real, or end at Preprocess (an injected failure)
    slow_faults: bool  # a training job that hangs for its 60 s MaxRuntime, an update refused until it fails


QUICK = Sizes("quick", burst_uploads=20, storm_hours=6, storm_tick_minutes=10, burst_trains=False, slow_faults=False)
FULL = Sizes("full", burst_uploads=200, storm_hours=48, storm_tick_minutes=5, burst_trains=True, slow_faults=True)


def sizes(full: bool | None = None) -> Sizes:
    """FULL when asked, or when SELFHEAL_FULL=1 (how `make test` is told to run the full sizes)."""
    return FULL if (os.environ.get("SELFHEAL_FULL") == "1" if full is None else full) else QUICK


def write_csv(folder: Path, name: str, rows: int, seed: int, shift: float = 0.0, with_target: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    churn_frame(rows, seed, shift=shift, with_target=with_target).to_csv(path, index=False)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- faults --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Injection:
    """A fault to inject, and what in selfheal should absorb it."""

    target: str
    kind: str
    times: int | None = 1
    absorbed_by: str = ""

    @property
    def aws(self) -> str:
        return describe(self.target, self.kind)


@dataclass
class Injected:
    injection: Injection
    fired: int

    def as_dict(self) -> dict[str, Any]:
        i = self.injection
        return {"target": i.target, "kind": i.kind, "aws": i.aws, "times": i.times, "fired": self.fired,
                "absorbed_by": i.absorbed_by}


@contextlib.contextmanager
def injected(cloud: LocalCloud, injections: tuple[Injection, ...]) -> Iterator[list[Injected]]:
    """Arm the faults for the block; afterwards each says how often it fired. Faults never outlive it."""
    armed = [(i, cloud.faults.add(i.target, i.kind, i.times)) for i in injections]
    found = [Injected(i, 0) for i in injections]
    try:
        yield found
    finally:
        for record, (_, fault) in zip(found, armed, strict=True):
            record.fired = fault.fired
        cloud.faults.clear()


# Every layer's transient faults, at once, on one run. Ingest's two share its three async attempts.
TRANSIENT = (
    Injection("api:dynamodb:PutItem", "ProvisionedThroughputExceededException",
              absorbed_by="Lambda's async retry of IngestFunction (its first ledger write)"),
    Injection("api:s3:GetObject", "SlowDown",
              absorbed_by="Lambda's async retry of IngestFunction (its read of the model's configuration)"),
    Injection("sagemaker:CreateProcessingJob", "limit", absorbed_by="Preprocess: Retry with backoff"),
    Injection("job:processing", "capacity", absorbed_by="Preprocess: Retry on States.TaskFailed, new job name"),
    Injection("sagemaker:CreateTrainingJob", "limit", absorbed_by="Train: Retry with backoff"),
    Injection("job:training", "capacity", absorbed_by="Train: Retry on States.TaskFailed, new job name"),
    Injection("lambda:EvaluateGateFunction", "throttle", absorbed_by="Gate: Retry with backoff"),
    Injection("lambda:RegisterModelFunction", "service", absorbed_by="Register: Retry with backoff"),
    Injection("lambda:PrepareDeployFunction", "service", absorbed_by="DeployPipeline PrepareDeploy: Retry"),
    Injection("sagemaker:CreateEndpoint", "limit", absorbed_by="DeployPipeline CreateEndpoint: Retry"),
)
HANG = Injection("job:training", "hang",
                 absorbed_by="Train: the job is stopped at MaxRuntimeInSeconds; Retry on States.TaskFailed")


# -- a client of the endpoint ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    phase: str
    status: int  # 200, or the container's own status (ModelError's OriginalStatusCode), or the API's


class Traffic:
    """A client sending the model's rows to its endpoint one by one, in a thread, for as long as the block
    lasts; each answer is kept with the phase of the story it came in."""

    PACE = 0.02  # seconds between requests: steady traffic that leaves the CPUs to the jobs

    def __init__(self, cloud: LocalCloud, model: str, rows: list[bytes]) -> None:
        self._runtime = cloud.client("sagemaker-runtime")
        self._endpoint = endpoint_name(model)
        self._rows = rows
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, name="traffic", daemon=True)
        self.phase = "start"
        self.answers: list[Answer] = []

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _send(self) -> None:
        index = 0
        while not self._stop.is_set():
            phase, row = self.phase, self._rows[index % len(self._rows)]
            index += 1
            self.answers.append(Answer(phase, invoke_status(self._runtime, self._endpoint, row)))
            self._stop.wait(self.PACE)

    def during(self, phase: str) -> list[Answer]:
        return [a for a in list(self.answers) if a.phase == phase]


def invoke_status(runtime: Any, endpoint: str, body: bytes, content_type: str = "text/csv",
                  accept: str = "text/csv") -> int:
    """200 when the endpoint answered; else the container's status (ModelError) or the API's."""
    try:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType=content_type, Accept=accept, Body=body)
    except ClientError as error:
        return int(error.response.get("OriginalStatusCode") or error.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def request_rows(rows: int, seed: int, shift: float) -> list[bytes]:
    """Feature rows as a client sends them: CSV lines without header or target."""
    frame = churn_frame(rows, seed, shift=shift, with_target=False)
    return [line.encode() for line in frame.to_csv(header=False, index=False, lineterminator="\n").splitlines()]


# -- the serving story ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    injections: tuple[Injection, ...]
    expect: str  # deployed | failed | rolled_back
    shift: float
    seed: int
    cause: str | None = None  # what the ledger's cause names, for a failed run
    canary_errors: bool = False  # requests routed to the new model may fail until its alarm rolls it back
    downtime: bool = False  # the endpoint is replaced: requests meanwhile may be refused (never a 5xx)


FAILURES = (
    Step("algorithm", "the training algorithm fails every time",
         (Injection("job:training", "algorithm", None, "nothing: the run fails, recorded and notified"),),
         expect="failed", shift=1.0, seed=2, cause="AlgorithmError"),
    Step("lambda_raises", "EvaluateGateFunction raises every time",
         (Injection("lambda:EvaluateGateFunction", "raise", None, "nothing: the run fails, recorded and notified"),),
         expect="failed", shift=1.0, seed=3, cause="injected fault"),
    Step("update_refused", "SageMaker refuses UpdateEndpoint every time",
         (Injection("sagemaker:UpdateEndpoint", "limit", None, "nothing: the rollout fails, the old model serves"),),
         expect="failed", shift=1.0, seed=4, cause="DeployPipeline"),
    Step("unhealthy", "the new model fails its health check",
         (Injection("endpoint:unhealthy", "fail", 1, "SageMaker's blue/green update rolls back"),),
         expect="rolled_back", shift=1.0, seed=5),
    Step("model_errors", "the new model answers every request with a server error",
         (Injection("endpoint:model_errors", "fail", 1, "the 5xx alarm rolls the canary back"),),
         expect="rolled_back", shift=1.0, seed=6, canary_errors=True),
    Step("smoke_test_fails", "SmokeTestFunction fails the new model, and every new fleet takes 15 minutes to launch",
         (Injection("lambda:SmokeTestFunction", "raise", None, "RestorePreviousConfig puts the old config back"),
          Injection("endpoint:slow_start", "slow", None,
                    "RestorePreviousConfig gives the old config's new fleet the deployment's own timeout")),
         expect="rolled_back", shift=1.0, seed=7),
    Step("update_failed", "the update leaves the endpoint Failed",
         (Injection("endpoint:update_failed", "fail", 1,
                    "DeployPipeline deletes the Failed endpoint and creates it again on the previous config"),),
         expect="rolled_back", shift=1.0, seed=11, downtime=True),
    Step("rollback_failed", "the new model fails its health check, and SageMaker's rollback fails too",
         (Injection("endpoint:unhealthy", "fail", 1, "SageMaker's blue/green update rolls back"),
          Injection("endpoint:rollback_failed", "fail", 1,
                    "DeployPipeline replaces the UpdateRollbackFailed endpoint on the previous config")),
         expect="rolled_back", shift=1.0, seed=12, downtime=True),
)
SLOW_FAILURES = {"update_refused"}  # its retries take long: full size only


@dataclass
class StepResult:
    step: Step
    faults: list[Injected]
    runs: list[dict[str, Any]]
    ledger_run: dict[str, Any]
    serving_before: str | None  # the package the ledger says serves
    serving_after: str | None
    config_before: str | None  # the endpoint config SageMaker serves
    config_after: str | None
    champion_after: str | None
    history: list[dict[str, Any]]
    answers: list[Answer] | None  # None: no endpoint to send traffic to yet
    new_variant_invocations: int = 0

    @property
    def run(self) -> dict[str, Any]:
        return self.runs[0] if self.runs else {}

    def problems(self) -> list[str]:
        found = [f"{f.injection.target} {f.injection.kind} never fired" for f in self.faults if not f.fired]
        if len(self.runs) != 1:
            return [*found, f"{len(self.runs)} runs started, expected 1"]
        run, step = self.run, self.step
        outcome = (run["status"], run["decision"])
        wanted = {"deployed": ("SUCCEEDED", "deployed"), "failed": ("FAILED", "failed"),
                  "rolled_back": ("SUCCEEDED", "registered")}[step.expect]
        if outcome != wanted:
            found.append(f"run {run['run_id']} ended {outcome}, expected {wanted}")
        serving = run["model_package_arn"] if step.expect == "deployed" else self.serving_before
        if self.serving_after != serving:
            found.append(f"the endpoint serves {self.serving_after}, expected {serving}")
        if step.expect != "deployed" and self.config_after != self.config_before:
            found.append(f"SageMaker serves {self.config_after}, not the config that served before, "
                         f"{self.config_before}")
        if self.champion_after != serving:
            found.append(f"the champion is {self.champion_after}, but the endpoint serves {serving}")
        if step.cause and step.cause not in json.dumps(self.ledger_run.get("cause")):
            found.append(f"the ledger's cause does not name {step.cause!r}: {self.ledger_run.get('cause')!r}")
        if step.expect == "rolled_back" and not any(
                h["run_id"] == run["run_id"] and h["outcome"] == "rolled_back" for h in self.history):
            found.append("the endpoint's history has no rolled_back entry for the run")
        return found + self.traffic_problems()

    def traffic_problems(self) -> list[str]:
        if self.answers is None:
            return []
        if not self.answers:
            return ["no traffic was sent during the step"]
        failed = [a for a in self.answers if a.status != 200]
        if self.step.downtime:  # refused while replaced (the API's 4xx), never a server error
            return [f"{len(failed)} requests failed, some not refused: {sorted({a.status for a in failed})}"] \
                if any(a.status >= 500 for a in failed) else []
        if not self.step.canary_errors:
            return [f"{len(failed)} of {len(self.answers)} requests were not answered"] if failed else []
        # Only requests the new model took may fail (until its alarm fires); the old model answers the rest.
        if any(a.status != 500 for a in failed) or len(failed) > self.new_variant_invocations:
            return [f"{len(failed)} requests failed; the new model took {self.new_variant_invocations}"]
        return []


@dataclass
class Duplicates:
    """One event delivered more than once: how many runs (executions) it started."""

    event: str
    deliveries: int
    started: int
    outcome: str
    faults: list[Injected] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = [f"{f.injection.target} {f.injection.kind} never fired" for f in self.faults if not f.fired]
        if self.started != 1:
            found.append(f"{self.deliveries} deliveries of the {self.event} started {self.started} runs")
        failed = [a for a in self.answers if a.status != 200]
        if failed:
            found.append(f"{len(failed)} of {len(self.answers)} requests were not answered")
        return found


@dataclass
class Story:
    steps: list[StepResult] = field(default_factory=list)
    duplicates: list[Duplicates] = field(default_factory=list)
    payloads: list[InputOutcome] = field(default_factory=list)
    requests: int = 0

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.step.name == name)

    def duplicate(self, event: str) -> Duplicates:
        return next(d for d in self.duplicates if d.event == event)

    def problems(self) -> list[str]:
        return ([f"{s.step.name}: {p}" for s in self.steps for p in s.problems()]
                + [f"{d.event}: {p}" for d in self.duplicates for p in d.problems()]
                + [f"payload {p.name}: {p.problem}" for p in self.payloads if p.problem])


def serving_story(cloud: LocalCloud, folder: Path, size: Sizes) -> Story:
    """Deploy a model through every transient fault, then fail every way while a client sends traffic."""
    story = Story()
    cloud.put_model_config(MODEL, STORY_CONFIG)
    transient = TRANSIENT + ((HANG,) if size.slow_faults else ())
    first = Step("transient", "every layer's transient faults at once", transient, expect="deployed", shift=0.0, seed=1)
    story.steps.append(_upload_step(cloud, folder, first, None))
    # Shifted traffic: what the monitor will find drifted against the first model's baseline.
    with Traffic(cloud, MODEL, request_rows(300, seed=41, shift=1.0)) as traffic:
        traffic.phase = "hostile payloads"
        story.payloads = hostile_payloads(cloud, MODEL)
        for step in FAILURES:
            if size.slow_faults or step.name not in SLOW_FAILURES:
                story.steps.append(_upload_step(cloud, folder, step, traffic))
        story.duplicates.append(_schedule_twice(cloud, folder, traffic))
        story.duplicates.append(_approval_three_times(cloud, folder, traffic))
    story.requests = len(traffic.answers)
    return story


def _upload_step(cloud: LocalCloud, folder: Path, step: Step, traffic: Traffic | None) -> StepResult:
    seen = {run["run_id"] for run in build_report(cloud, [MODEL])["runs"]}
    before = _serving(cloud)
    if traffic:
        traffic.phase = step.name
    with injected(cloud, step.injections) as faults:
        cloud.upload(MODEL, write_csv(folder, f"{step.name}.csv", ROWS, step.seed, step.shift))
        cloud.wait_idle(IDLE_TIMEOUT)
    report = build_report(cloud, [MODEL])
    runs = [run for run in report["runs"] if run["run_id"] not in seen]
    ledger_run = next((r for r in ledger_items(cloud, MODEL, "RUN#") if runs and r["run_id"] == runs[0]["run_id"]), {})
    (champion,) = ledger_items(cloud, MODEL, "CHAMPION") or [{}]
    endpoint = report["endpoints"].get(MODEL, {})
    after = _serving(cloud)
    return StepResult(step, faults, runs, ledger_run, serving_before=before[0], serving_after=after[0],
                      config_before=before[1], config_after=after[1],
                      champion_after=champion.get("model_package_arn"), history=endpoint.get("history", []),
                      answers=traffic.during(step.name) if traffic else None,
                      new_variant_invocations=_invocations_off(cloud, before[1]))


def _serving(cloud: LocalCloud) -> tuple[str | None, str | None]:
    """(package the ledger says serves, the endpoint config SageMaker serves)."""
    (item,) = ledger_items(cloud, MODEL, "ENDPOINT") or [{}]
    endpoint = cloud.hosting.endpoints.get(endpoint_name(MODEL))
    return item.get("model_package_arn"), endpoint.config_name if endpoint else None


def _invocations_off(cloud: LocalCloud, config: str | None) -> int:
    """Requests the endpoint routed to any config but `config` (the one serving before the step)."""
    endpoint = cloud.hosting.endpoints.get(endpoint_name(MODEL))
    if endpoint is None or config is None:
        return 0
    return sum(m.invocations for key, m in endpoint.metrics.items() if not key.startswith(f"{config}/"))


def _schedule_twice(cloud: LocalCloud, folder: Path, traffic: Traffic) -> Duplicates:
    """EventBridge Scheduler delivers at least once: the hourly monitor starts twice on drifted traffic, with
    labelled data the champion has not seen waiting (uploaded under a trigger that holds it): one retrain."""
    traffic.phase = "schedule"
    cloud.put_model_config(MODEL, STORY_CONFIG | {"trigger": {"mode": "min_new_rows", "min_new_rows": 10**9}})
    cloud.upload(MODEL, write_csv(folder, "schedule.csv", ROWS, seed=9, shift=1.0))
    cloud.wait_idle(IDLE_TIMEOUT)
    cloud.put_model_config(MODEL, STORY_CONFIG)
    before = _runs_by_trigger(cloud, "drift")
    update = Injection("sagemaker:UpdateEndpoint", "limit", absorbed_by="DeployPipeline UpdateEndpoint: Retry")
    with injected(cloud, (update,)) as faults:
        cloud.hosting.flush_capture()  # SageMaker writes capture files within minutes; the monitor reads files
        # No ENDPOINT item when no model ever deployed: nothing is fired, and problems() says so.
        for endpoint in ledger_items(cloud, MODEL, "ENDPOINT") * 2:
            cloud.fire_schedule(endpoint["schedule_name"], cloud.template.ref("MonitorScheduleGroup"))
        cloud.wait_idle(IDLE_TIMEOUT)
    drift = [run for run in _runs_by_trigger(cloud, "drift") if run["run_id"] not in before]
    return Duplicates("monitor schedule", 2, len(drift), ", ".join(f"{r['status']} {r['decision']}" for r in drift),
                      faults, traffic.during("schedule"))


def _runs_by_trigger(cloud: LocalCloud, trigger: str) -> list[dict[str, Any]]:
    return [run for run in build_report(cloud, [MODEL])["runs"] if run["trigger"] == trigger]


def _approval_three_times(cloud: LocalCloud, folder: Path, traffic: Traffic) -> Duplicates:
    """A package approved by hand: its event delivered three times (during and after its deployment)."""
    traffic.phase = "approval"
    cloud.put_model_config(MODEL, STORY_CONFIG | {"approval": "manual"})
    cloud.upload(MODEL, write_csv(folder, "approval.csv", ROWS, seed=8, shift=1.0))  # beats the first model
    cloud.wait_idle(IDLE_TIMEOUT)
    package = cloud.approve_latest(MODEL)
    delivery = max(i for i, d in enumerate(cloud.delivered) if "ApprovalFunction" in d.target["Arn"])
    cloud.redeliver(delivery)  # alongside the first delivery
    cloud.wait_idle(IDLE_TIMEOUT)
    cloud.redeliver(delivery)  # after the deployment
    cloud.wait_idle(IDLE_TIMEOUT)
    deploys = [e for e in executions(cloud)
               if e["state_machine"] == "DeployPipeline" and e["input"].get("model_package_arn") == package]
    serving, _ = _serving(cloud)
    outcome = "deployed" if serving == package else f"not serving ({serving})"
    return Duplicates("approval event", 3, len(deploys), outcome, answers=traffic.during("approval"))


# -- hostile input ---------------------------------------------------------------------------------------------


@dataclass
class InputOutcome:
    """One hostile input: what should happen to it, and what did."""

    name: str
    expected: str
    observed: str
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.name, "expected": self.expected, "observed": self.observed, "held": not self.problem,
                "problem": self.problem}


def hostile_payloads(cloud: LocalCloud, model: str) -> list[InputOutcome]:
    """Bad requests to the real endpoint: each a client error (4xx), never a server error; the endpoint
    answers a good request afterwards. (Bytes that are not UTF-8 cannot pass moto's request parsing;
    tests/ml/test_inference.py sends them to the inference code directly.)"""
    runtime, endpoint = cloud.client("sagemaker-runtime"), endpoint_name(model)
    good = request_rows(1, seed=5, shift=0.0)[0]
    payloads: dict[str, tuple[bytes, str, str]] = {
        "empty": (b"", "text/csv", "text/csv"),
        "blank lines": (b"\n \n", "text/csv", "text/csv"),
        "too few columns": (b"1,2,3", "text/csv", "text/csv"),
        "too many columns": (good + b",1,2", "text/csv", "text/csv"),
        "not a number": (b"ten," + good.split(b",", 1)[1], "text/csv", "text/csv"),
        "too large (7 MB)": ((good + b"\n") * (7 * MB // len(good) + 1), "text/csv", "text/csv"),
        "JSON not JSON": (b'{"instances": [[1, 2', "application/json", "application/json"),
        "JSON wrong shape": (b'"hello"', "application/json", "application/json"),
        "JSON missing features": (b'[{"age": 30}]', "application/json", "application/json"),
        "unsupported content type": (good, "application/x-npy", "text/csv"),
        "unsupported accept": (good, "text/csv", "image/png"),
    }
    outcomes = []
    for name, (body, content_type, accept) in payloads.items():
        status = invoke_status(runtime, endpoint, body, content_type, accept)
        ok = 400 <= status < 500
        outcomes.append(InputOutcome(f"inference: {name}", "client error (4xx)", str(status),
                                     None if ok else f"answered {status}, not a client error"))
    status = invoke_status(runtime, endpoint, good)
    outcomes.append(InputOutcome("inference: a good row after all that", "answered (200)", str(status),
                                 None if status == 200 else f"answered {status}"))
    return outcomes


@dataclass(frozen=True)
class Upload:
    name: str
    key: str
    part: bytes
    check: str  # the quarantine check that must reject it
    repeat: int = 1  # the body is `part` repeated: large bodies are only built when uploaded

    @property
    def body(self) -> bytes:
        return self.part * self.repeat


def _labelled(table: bytes, label: bytes) -> bytes:
    """The table with every row's target (the last column) set to `label`."""
    header, *rows = table.splitlines()
    return b"\n".join([header, *(row.rsplit(b",", 1)[0] + b"," + label for row in rows)]) + b"\n"


def _with_cell(table: bytes, cell: bytes) -> bytes:
    """The table with the first cell of its second data row replaced."""
    lines = table.splitlines()
    lines[2] = cell + b"," + lines[2].split(b",", 1)[1]
    return b"\n".join(lines) + b"\n"


def hostile_upload_catalogue() -> list[Upload]:
    good = churn_frame(80, seed=3).to_csv(index=False).encode()
    header = good.split(b"\n", 1)[0]
    formula = {"=": b'=HYPERLINK("http://x")', "+": b"+cmd", "-": b"-2+3", "@": b"@SUM(A1)"}
    churn = "incoming/churn/"
    return [
        Upload("empty file", churn + "empty.csv", b"", "empty"),
        Upload("header only", churn + "header.csv", header + b"\n", "rows"),
        Upload("binary bytes", churn + "binary.csv", bytes(range(256)) * 8, "encoding"),
        Upload("not UTF-8", churn + "latin1.csv", header + b"\n" + "caf\xe9,".encode("latin-1") * 10, "encoding"),
        Upload("wrong delimiter", churn + "semicolons.csv", good.replace(b",", b";"), "delimiter"),
        Upload("ragged rows", churn + "ragged.csv", good + b"1,2,3\n", "ragged"),
        Upload("a single line of 100 MB", churn + "long-line.csv", b"x", "line_length", repeat=100 * MB),
        Upload("missing target", churn + "no-target.csv", good.replace(b"churned", b"left", 1), "header"),
        Upload("target all empty", churn + "no-labels.csv", _labelled(good, b""), "target"),
        Upload("one class only", churn + "one-class.csv", _labelled(good, b"1"), "classes"),
        Upload("too few rows", churn + "few.csv", b"\n".join(good.splitlines()[:5]) + b"\n", "rows"),
        Upload("duplicate column names", churn + "dup-columns.csv", good.replace(b",age,", b",plan,", 1), "header"),
        Upload("blank column name", churn + "blank-column.csv", good.replace(b",age,", b", ,", 1), "header"),
        *[Upload(f"formula cell {symbol}", churn + f"formula-{i}.csv", _with_cell(good, cell), "formula")
          for i, (symbol, cell) in enumerate(formula.items())],
        Upload("key with ..", churn + "..data.csv", good, "key"),
        Upload("key with a control character", churn + "bad\x07name.csv", good, "key"),
        Upload("key with a very long name", churn + "n" * 300 + ".csv", good, "key"),
        Upload("key in a sub-folder", churn + "2025/data.csv", good, "key"),
        Upload("unknown model", "incoming/nobody/data.csv", good, "model"),
        Upload("config with a wrong type", "incoming/cfg-type/data.csv", good, "config"),
        Upload("config with an unknown field", "incoming/cfg-field/data.csv", good, "config"),
        Upload("config with an out-of-range value", "incoming/cfg-range/data.csv", good, "config"),
        Upload(OVERSIZE, f"incoming/{OVERSIZE_MODEL}/big.csv", good, "size", repeat=MB // len(good) + 1),
    ]


# Configurations that are refused, and the field the refusal must name.
BAD_CONFIGS = {
    "cfg-type": (STORY_CONFIG | {"metric": {"name": "auc", "threshold": "high"}}, "metric.threshold"),
    "cfg-field": (STORY_CONFIG | {"colour": "blue"}, "colour"),
    "cfg-range": (STORY_CONFIG | {"deploy": {"canary_percent": 80}}, "deploy.canary_percent"),
}
OVERSIZE_MODEL = "small"  # a model whose uploads may be 1 MB at most
OVERSIZE = "over the size limit (checked without reading it)"
OUTSIDE = "upload outside incoming/"


@dataclass
class Catalogue:
    outcomes: list[InputOutcome]
    untouched: list[str]  # what "nothing else disturbed" found disturbed (empty when nothing was)

    def problems(self) -> list[str]:
        return [f"{o.name}: {o.problem}" for o in self.outcomes if o.problem] + self.untouched


def hostile_uploads(cloud: LocalCloud, folder: Path) -> Catalogue:
    """Every bad upload is quarantined with its reason and the original kept, and nothing else moves: a
    good dataset recorded before stays as it was, and no run starts."""
    quiet = STORY_CONFIG | {"trigger": {"mode": "min_new_rows", "min_new_rows": 10**9}}  # record, never train
    cloud.put_model_config(MODEL, quiet)
    cloud.put_model_config(OVERSIZE_MODEL, quiet | {"validation": {"min_rows": 50, "max_bytes": MB}})
    for model, (config, _) in BAD_CONFIGS.items():
        cloud.put_model_config(model, config)
    cloud.upload(MODEL, write_csv(folder, "good.csv", 200, seed=9))
    cloud.wait_idle(IDLE_TIMEOUT)
    (good,) = ledger_items(cloud, MODEL, "DATASET#")

    s3 = cloud.client("s3")
    catalogue = hostile_upload_catalogue()
    for upload in catalogue:
        s3.put_object(Bucket=cloud.bucket, Key=upload.key, Body=upload.body)
    outside = "uploads/churn/data.csv"  # a mistyped prefix: the IngestRule only matches incoming/
    s3.put_object(Bucket=cloud.bucket, Key=outside, Body=b"a,churned\n1,0\n")
    cloud.wait_idle(IDLE_TIMEOUT)

    outcomes = [_quarantine_outcome(cloud, upload) for upload in catalogue]
    oversize, key = next((o, u.key) for o, u in zip(outcomes, catalogue, strict=True) if u.name == OVERSIZE)
    read = [c for c in cloud.audit.calls if c.operation == "GetObject" and c.params.get("Key") == key]
    if read:
        oversize.problem = f"read {len(read)} time(s) before it was refused"
    kept = s3.get_object(Bucket=cloud.bucket, Key=outside)["Body"].read() == b"a,churned\n1,0\n"
    outcomes.append(InputOutcome(OUTSIDE, "ignored, left where it is", "left alone" if kept else "moved or changed",
                                 None if kept else "touched"))
    untouched = []
    if ledger_items(cloud, MODEL, "DATASET#") != [good]:
        untouched.append("the good dataset recorded before changed")
    if build_report(cloud, [MODEL])["runs"]:
        untouched.append("a run started")
    if cloud.dead_letters:
        untouched.append(f"{len(cloud.dead_letters)} deliveries ended in the dead-letter queue")
    leftover = s3.list_objects_v2(Bucket=cloud.bucket, Prefix="incoming/").get("KeyCount", 0)
    if leftover:
        untouched.append(f"{leftover} uploads left in incoming/")
    return Catalogue(outcomes, untouched)


def _quarantine_outcome(cloud: LocalCloud, upload: Upload) -> InputOutcome:
    model = upload.key.split("/")[1]
    items = [i for m in {model, "_invalid"} for i in ledger_items(cloud, m, "QUARANTINE#") if i["key"] == upload.key]
    expected = f"quarantined ({upload.check})"
    if len(items) != 1:
        return InputOutcome(upload.name, expected, f"{len(items)} quarantine records", "not quarantined exactly once")
    item = items[0]
    observed = f"quarantined ({item['check']}): {item['reason']}"
    s3 = cloud.client("s3")
    kept = s3.get_object(Bucket=cloud.bucket, Key=item["quarantine_key"])["Body"].read()
    reason = json.loads(s3.get_object(Bucket=cloud.bucket, Key=item["quarantine_key"] + ".reason.json")["Body"].read())
    problem = None
    if item["check"] != upload.check:
        problem = f"rejected by the {item['check']} check, expected {upload.check}"
    elif sha256(kept) != sha256(upload.body):
        problem = "the quarantined copy differs from the original"
    elif reason["reason"] != item["reason"] or not item["reason"]:
        problem = "the reason document does not give the reason"
    elif model in BAD_CONFIGS and BAD_CONFIGS[model][1] not in item["reason"]:
        problem = f"the reason does not name the bad field {BAD_CONFIGS[model][1]}"
    return InputOutcome(upload.name, expected, observed, problem)


def hostile_events(cloud: LocalCloud) -> list[InputOutcome]:
    """Events IngestFunction must not act on: another bucket's, malformed ones, and a lookalike from another
    source on the bus. Each is refused with a clear error or ignored with the reason, touching nothing."""
    valid = _s3_event(cloud, cloud.bucket, "incoming/churn/data.csv")
    cases: dict[str, tuple[Any, str]] = {
        "an object in another bucket": (_s3_event(cloud, "someone-elses-bucket", "incoming/churn/data.csv"), "ignored"),
        "a key outside incoming/": (_s3_event(cloud, cloud.bucket, "config/churn.yaml"), "ignored"),
        "an event without detail": ({k: v for k, v in valid.items() if k != "detail"}, "ValidationError"),
        "another source": (valid | {"source": "aws.ec2"}, "ValidationError"),
        "another detail-type": (valid | {"detail-type": "Object Deleted"}, "ValidationError"),
        "an empty key": (_s3_event(cloud, cloud.bucket, ""), "ValidationError"),
        "a negative size": (_s3_event(cloud, cloud.bucket, "incoming/churn/data.csv", size=-1), "ValidationError"),
        "not an object": (["incoming/churn/data.csv"], "ValidationError"),
    }
    outcomes = []
    for name, (event, expected) in cases.items():
        try:
            observed = cloud.invoke("IngestFunction", event)["status"]
        except FunctionError as error:
            observed = error.error_type
        outcomes.append(InputOutcome(f"event: {name}", expected, observed,
                                     None if observed == expected else f"{observed}, expected {expected}"))
    before = len(cloud.delivered)
    cloud.client("events").put_events(Entries=[{"Source": "lookalike.app", "DetailType": "Object Created",
                                                "Detail": json.dumps(valid["detail"])}])
    delivered = f"delivered {len(cloud.delivered) - before} time(s)"
    outcomes.append(InputOutcome("event: an Object Created lookalike from another source", "not delivered", delivered,
                                 delivered if len(cloud.delivered) > before else None))
    written = [item["pk"] for item in cloud.resource("dynamodb").Table(cloud.ledger_table).scan()["Items"]
               if item["pk"].startswith("MODEL#")]
    if written:
        outcomes.append(InputOutcome("events: the ledger afterwards", "no model items", f"{len(written)} items",
                                     "the ledger was written"))
    return outcomes


def _s3_event(cloud: LocalCloud, bucket: str, key: str, size: int = 100) -> dict[str, Any]:
    """The sample upload event (events/ingest/valid_csv.json) for another bucket, key or size."""
    event = json.loads((cloud.root / "events" / "ingest" / "valid_csv.json").read_text())
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"] |= {"key": key, "size": size}
    return event


# -- the burst ------------------------------------------------------------------------------------------------


BURST_MODELS = tuple(f"burst-{letter}" for letter in "abcde")
BURST_ROWS = 100
BURST_CONFIG = STORY_CONFIG | {
    # Two uploads make a run; the rest arrive while it is in flight, and wait for it to end.
    "trigger": {"mode": "min_new_rows", "min_new_rows": 2 * BURST_ROWS},
    "training": {"window": {"mode": "all"}},
    "approval": "manual",  # registered, not deployed: the burst is about ingest and the one-run lock
}


@dataclass
class Burst:
    deliveries: int
    redeliveries: int
    uploads: list[str]  # distinct keys
    recorded: Counter[str]  # key -> DATASET items
    quarantined: Counter[str]  # key -> QUARANTINE items
    runs: dict[str, list[tuple[str, str]]]  # model -> [(started_at, ended_at)] from the ledger
    dead_letters: int
    seconds: float

    @property
    def lost(self) -> list[str]:
        return [key for key in self.uploads if not self.recorded[key] and not self.quarantined[key]]

    @property
    def doubled(self) -> list[str]:
        return [key for key in self.uploads if self.recorded[key] + self.quarantined[key] > 1]

    def in_flight_max(self, model: str) -> int:
        """The most runs of the model in flight at once (a run holds the lock from start to its record)."""
        edges = sorted([(start, 1) for start, _ in self.runs[model]] + [(end, -1) for _, end in self.runs[model]])
        most = current = 0
        for _, step in edges:  # an end sorts before a start at the same instant
            current += step
            most = max(most, current)
        return most

    def problems(self) -> list[str]:
        found = [f"lost: {key}" for key in self.lost] + [f"recorded twice: {key}" for key in self.doubled]
        found += [f"{model}: {self.in_flight_max(model)} runs in flight at once" for model in self.runs
                  if self.in_flight_max(model) > 1]
        if self.dead_letters:
            found.append(f"{self.dead_letters} deliveries ended in the dead-letter queue")
        return found

    def summary(self) -> dict[str, Any]:
        return {"deliveries": self.deliveries, "redeliveries": self.redeliveries, "distinct_uploads": len(self.uploads),
                "datasets": sum(self.recorded.values()), "quarantined": sum(self.quarantined.values()),
                "lost": len(self.lost), "recorded_twice": len(self.doubled), "dead_letters": self.dead_letters,
                "runs": sum(len(r) for r in self.runs.values()),
                "in_flight_max": {model: self.in_flight_max(model) for model in self.runs},
                "seconds": round(self.seconds, 1)}


def burst(cloud: LocalCloud, deliveries: int, trains: bool = True, seed: int = 5) -> Burst:
    """`deliveries` upload events across five models within seconds, a fifth of them redeliveries of
    earlier ones (EventBridge delivers at least once); every eighth upload is broken. Without `trains`, runs
    end at Preprocess (an injected failure): they take and release the lock while uploads still arrive,
    which is what is under test, in seconds instead of minutes of training."""
    cut_short = () if trains else (Injection("job:processing", "algorithm", None),)
    with injected(cloud, cut_short):
        return _burst(cloud, deliveries, random.Random(seed))  # noqa: S311 - which events to redeliver; not secret


def _burst(cloud: LocalCloud, deliveries: int, rng: random.Random) -> Burst:
    for model in BURST_MODELS:
        cloud.put_model_config(model, BURST_CONFIG)
    good = churn_frame(BURST_ROWS, seed=5).to_csv(index=False).encode()
    broken = good.split(b"\n", 1)[0] + b"\n"  # header only
    s3 = cloud.client("s3")
    redeliveries = deliveries // 5
    keys: list[str] = []
    redelivered = 0

    def redeliver_one() -> None:
        uploads = [i for i, d in enumerate(cloud.delivered) if "IngestFunction" in d.target["Arn"]]
        cloud.redeliver(rng.choice(uploads))

    started = time.monotonic()
    for index in range(deliveries - redeliveries):
        key = f"incoming/{BURST_MODELS[index % len(BURST_MODELS)]}/part-{index:04d}.csv"
        s3.put_object(Bucket=cloud.bucket, Key=key, Body=broken if index % 8 == 7 else good)
        keys.append(key)
        if index % 4 == 3 and redelivered < redeliveries:  # redeliveries come amid the uploads
            redeliver_one()
            redelivered += 1
    for _ in range(redeliveries - redelivered):
        redeliver_one()
    cloud.wait_idle(IDLE_TIMEOUT)
    recorded: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    runs: dict[str, list[tuple[str, str]]] = {}
    for model in BURST_MODELS:
        recorded.update(item["key"] for item in ledger_items(cloud, model, "DATASET#"))
        quarantined.update(item["key"] for item in ledger_items(cloud, model, "QUARANTINE#"))
        runs[model] = [(run["started_at"], run.get("ended_at", "in flight"))
                       for run in ledger_items(cloud, model, "RUN#")]
    return Burst(deliveries, redeliveries, keys, recorded, quarantined, runs, len(cloud.dead_letters),
                 time.monotonic() - started)


# -- the storm -------------------------------------------------------------------------------------------------


STORM_MODEL = "storm"
STORM_RETRAIN = {"on_violation": "retrain", "cooldown_minutes": 60, "daily_cap": 3}
STORM_VIOLATIONS = [
    {"feature_name": "monthly_charges", "constraint_check_type": "baseline_drift_check",
     "description": "Baseline drift distance: 0.41 exceeds threshold: 0.1"},
    {"feature_name": "plan", "constraint_check_type": "baseline_drift_check",
     "description": "Baseline drift distance: 0.3 exceeds threshold: 0.1"},
]
STORM_DRIFT = {"version": 0, "rows": 300, "records": 300, "empty": False, "emit_metrics": False, "violation_count": 2,
               "features": {"monthly_charges": {"distance": 0.41, "threshold": 0.1, "drifted": True},
                            "plan": {"distance": 0.3, "threshold": 0.1, "drifted": True}}}
STORM_START = datetime(2026, 1, 5, tzinfo=UTC)
# Labels confirm the drop each time (realized AUC far below the threshold on enough labelled predictions):
# every report calls for a retrain, so only the guard rails may hold one back.
STORM_QUALITY = {"problem": "binary", "metric": "auc", "threshold": 0.75,
                 "labels": {"records": 400, "matched": 400, "missing": 0, "pending": 0, "late": 0},
                 "metrics": {"auc": 0.55}, "estimated": {"auc": 0.6}, "estimation": "confidence-based (CBPE)",
                 "violations": [{"metric_name": "auc", "constraint_check_type": "LessThanThreshold",
                                 "description": "Metric auc with 0.55 was LessThanThreshold '0.75'"}],
                 "labelled": {"file": "labelled_traffic.csv", "rows": 400, "columns": 9}}


@dataclass
class Tick:
    at: datetime
    action: str
    suppressed: str | None


@dataclass
class Storm:
    hours: int
    tick_minutes: int
    ticks: list[Tick]
    cooldown: timedelta
    daily_cap: int
    runs_started: int

    @property
    def retrains(self) -> list[datetime]:
        return [t.at for t in self.ticks if t.action == "retrain"]

    def problems(self) -> list[str]:
        found = []
        retrains = self.retrains
        for earlier, later in zip(retrains, retrains[1:], strict=False):
            if later - earlier < self.cooldown:
                found.append(f"retrains at {earlier:%H:%M} and {later:%d %H:%M} are inside the cooldown")
        for at in retrains:
            day = [r for r in retrains if at - timedelta(days=1) < r <= at]
            if len(day) > self.daily_cap:
                found.append(f"{len(day)} retrains in the 24 hours to {at:%d %H:%M}, over the cap of {self.daily_cap}")
        for tick in self.ticks:  # a suppression must be one the rules call for: the loop retrains when allowed
            recent = [r for r in retrains if r < tick.at]
            due = not recent or tick.at - recent[-1] >= self.cooldown
            capped = len([r for r in recent if tick.at - r < timedelta(days=1)]) >= self.daily_cap
            if tick.action != "retrain" and due and not capped:
                found.append(f"{tick.at:%d %H:%M}: suppressed ({tick.suppressed}) though allowed")
        if self.runs_started != len(retrains):
            found.append(f"{self.runs_started} quality runs started for {len(retrains)} retrain decisions")
        return found

    def summary(self) -> dict[str, Any]:
        suppressed = Counter(t.suppressed for t in self.ticks if t.suppressed)
        return {"simulated_hours": self.hours, "violation_reports": len(self.ticks),
                "tick_minutes": self.tick_minutes,
                "retrains": len(self.retrains),
                "daily_cap": self.daily_cap, "cooldown_minutes": int(self.cooldown.total_seconds() // 60),
                "suppressed": dict(suppressed), "quality_runs_started": self.runs_started}


def storm(cloud: LocalCloud, folder: Path, hours: int, tick_minutes: int) -> Storm:
    """A monitor that finds drift and a confirmed quality drop every `tick_minutes` for `hours` of simulated
    time, judged by the real ViolationFunction (as MonitorPipeline's Decide state calls it) on the clock the storm
    sets. The runs it starts end at once (an injected preprocessing failure): the guard rails count retrains."""
    cloud.put_model_config(STORM_MODEL, STORY_CONFIG | {
        "trigger": {"mode": "min_new_rows", "min_new_rows": 10**9}, "retrain": STORY_CONFIG["retrain"] | STORM_RETRAIN})
    report, quality = f"monitoring/{STORM_MODEL}/storm/report", f"monitoring/{STORM_MODEL}/storm/quality"
    s3 = cloud.client("s3")
    for key, body in ((f"{report}/constraint_violations.json", {"violations": STORM_VIOLATIONS}),
                      (f"{report}/drift_metrics.json", STORM_DRIFT),
                      (f"{quality}/quality_metrics.json", STORM_QUALITY)):
        s3.put_object(Bucket=cloud.bucket, Key=key, Body=json.dumps(body).encode())
    labelled = write_csv(folder, "labelled_traffic.csv", 400, seed=12, shift=1.0)  # what a retrain trains on
    s3.upload_file(str(labelled), cloud.bucket, f"{quality}/labelled/labelled_traffic.csv")
    ticks = []
    failing_runs = (Injection("job:processing", "algorithm", None),)
    with injected(cloud, failing_runs), simulated_time(cloud, SimulatedClock(STORM_START)) as clock:
        for n in range(hours * 60 // tick_minutes):
            clock.advance_to(STORM_START + timedelta(minutes=n * tick_minutes))
            decision = cloud.invoke("ViolationFunction", {"model": STORM_MODEL, "execution": f"monitor-storm-{n:06d}",
                                                          "window": _storm_window(cloud, clock.now, tick_minutes)})
            ticks.append(Tick(clock.now, decision["action"], decision["suppressed"]))
            if decision["action"] == "retrain":
                cloud.wait_idle(IDLE_TIMEOUT)  # the run ends before the next report: time passes between them
    runs = [r for r in build_report(cloud, [STORM_MODEL])["runs"] if r["trigger"] == "quality"]
    return Storm(hours, tick_minutes, ticks, timedelta(minutes=STORM_RETRAIN["cooldown_minutes"]),
                 STORM_RETRAIN["daily_cap"], len(runs))


def _storm_window(cloud: LocalCloud, now: datetime, tick_minutes: int) -> dict[str, Any]:
    """PrepareMonitor's window for one storm report: the drift report and the quality report already written."""
    folder = f"s3://{cloud.bucket}/monitoring/{STORM_MODEL}/storm"
    start, end = _iso(now - timedelta(minutes=tick_minutes)), _iso(now)
    quality = {"has_data": True, "reason": "capture and ground-truth files to judge", "start": start, "end": end,
               "label_delay_hours": 0.0, "metric": "auc", "threshold": 0.75, "files": 1, "label_files": 1,
               "model_package_arn": None, "baseline_uri": None, "capture_manifest_uri": None,
               "labels_manifest_uri": None, "report_uri": f"{folder}/quality",
               "labelled_uri": f"{folder}/quality/labelled"}
    return {"has_data": True, "reason": "capture files to analyse", "files": 1,
            "endpoint_name": endpoint_name(STORM_MODEL), "start": start, "end": end, "baseline_uri": None,
            "manifest_uri": None, "report_uri": f"{folder}/report", "code_uri": None, "job_prefix": None,
            "instance_type": None, "cluster": None, "quality": quality}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- a fault in one function, and what exists afterwards ------------------------------------------------------


@dataclass
class Counted:
    """A fault in a function (one that died after its side effects, or a throttled write), and what exists
    afterwards, counted against what should."""

    name: str
    faults: list[Injected]
    counts: dict[str, int]  # what -> how many exist
    expected: dict[str, int]

    def problems(self) -> list[str]:
        found = [f"{f.injection.target} {f.injection.kind} never fired" for f in self.faults if not f.fired]
        return found + [f"{what}: {self.counts[what]}, expected {n}" for what, n in self.expected.items()
                        if self.counts[what] != n]


def crash_in_ingest(cloud: LocalCloud, folder: Path, notifications: Callable[[], list[dict[str, Any]]]) -> Counted:
    """IngestFunction dies after recording a dataset, and after quarantining an upload; Lambda retries each."""
    cloud.put_model_config(MODEL, STORY_CONFIG | {"trigger": {"mode": "min_new_rows", "min_new_rows": 10**9}})
    crash = Injection("lambda:IngestFunction", "crash_after", 2, "Lambda's async retry; ingest runs once per upload")
    with injected(cloud, (crash,)) as faults:
        cloud.upload(MODEL, write_csv(folder, "good.csv", 200, seed=21))
        cloud.client("s3").put_object(Bucket=cloud.bucket, Key=f"incoming/{MODEL}/empty.csv", Body=b"")
        cloud.wait_idle(IDLE_TIMEOUT)
    s3 = cloud.client("s3")
    copies = {prefix: s3.list_objects_v2(Bucket=cloud.bucket, Prefix=f"{prefix}/{MODEL}/").get("KeyCount", 0)
              for prefix in ("datasets", "quarantine")}
    counts = {"dataset records": len(ledger_items(cloud, MODEL, "DATASET#")), "dataset copies": copies["datasets"],
              "quarantine records": len(ledger_items(cloud, MODEL, "QUARANTINE#")),
              "quarantine files (upload + reason)": copies["quarantine"],
              "quarantine notifications": sum(n.get("event") == "upload.quarantined" for n in notifications()),
              "dead letters": len(cloud.dead_letters)}
    return Counted("IngestFunction dies after its side effects", faults, counts,
                   {"dataset records": 1, "dataset copies": 1, "quarantine records": 1,
                    "quarantine files (upload + reason)": 2, "quarantine notifications": 1, "dead letters": 0})


def crash_in_pipeline(cloud: LocalCloud, folder: Path, notifications: Callable[[], list[dict[str, Any]]]) -> Counted:
    """RegisterModelFunction dies after registering the package, RecordRunFunction after recording the run and
    notifying; Step Functions sees Lambda.Unknown each time."""
    cloud.put_model_config(MODEL, STORY_CONFIG | {"approval": "manual"})  # ends at RecordRegistered: no deploy
    crashes = (
        Injection("lambda:RegisterModelFunction", "crash_after", 1, "Register: Retry; registering is idempotent"),
        Injection("lambda:RecordRunFunction", "crash_after", 1, "RecordRegistered: Retry; recording is idempotent"),
    )
    with injected(cloud, crashes) as faults:
        cloud.upload(MODEL, write_csv(folder, "crash.csv", ROWS, seed=22))
        cloud.wait_idle(IDLE_TIMEOUT)
    return Counted("RegisterModelFunction and RecordRunFunction die after their side effects", faults,
                   _one_registered_run(cloud, notifications), ONE_REGISTERED_RUN)


def throttle_in_pipeline(cloud: LocalCloud, folder: Path,
                         notifications: Callable[[], list[dict[str, Any]]]) -> Counted:
    """DynamoDB throttles the Gate's ledger write past the SDK's own retries (the fault is raised above them),
    as a hot partition can: the run should back off and go on, as it does for a throttled Lambda."""
    cloud.put_model_config(MODEL, STORY_CONFIG | {"approval": "manual"})  # ends at RecordRegistered: no deploy
    cloud.upload(MODEL, write_csv(folder, "throttled.csv", ROWS, seed=23))
    deadline = time.monotonic() + IDLE_TIMEOUT
    while cloud.busy()["deliveries"] or not cloud.busy()["executions"]:  # ingest done, the run in flight
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not start")
        time.sleep(0.05)
    # Nothing but the Gate writes to DynamoDB before the run records its outcome.
    throttle = Injection("api:dynamodb:UpdateItem", "ProvisionedThroughputExceededException", 1,
                         "Gate: Retry with backoff")
    with injected(cloud, (throttle,)) as faults:
        cloud.wait_idle(IDLE_TIMEOUT)
    return Counted("DynamoDB throttles a pipeline function's write", faults,
                   _one_registered_run(cloud, notifications), ONE_REGISTERED_RUN)


ONE_REGISTERED_RUN = {"runs": 1, "runs SUCCEEDED and registered": 1, "model packages": 1,
                      "run.finished notifications": 1, "failure notifications": 0}


def _one_registered_run(cloud: LocalCloud, notifications: Callable[[], list[dict[str, Any]]]) -> dict[str, int]:
    report = build_report(cloud, [MODEL])
    packages = cloud.client("sagemaker").list_model_packages(ModelPackageGroupName=f"selfheal-{MODEL}")
    finished = [n for n in notifications() if n.get("event") == "run.finished"]
    return {"runs": len(report["runs"]),
            "runs SUCCEEDED and registered": sum((r["status"], r["decision"]) == ("SUCCEEDED", "registered")
                                                 for r in report["runs"]),
            "model packages": len(packages["ModelPackageSummaryList"]),
            "run.finished notifications": len(finished),
            "failure notifications": sum(n.get("decision") == "failed" for n in finished)}


# -- the figures -----------------------------------------------------------------------------------------------


def figures(story: Story, catalogue: Catalogue, events: list[InputOutcome], burst_: Burst, storm_: Storm,
            counted: list[Counted], size: Sizes, seconds: float) -> dict[str, Any]:
    faults = [{"scenario": f"story: {s.step.what}", "held": not s.problems(), **f.as_dict()}
              for s in story.steps for f in s.faults]
    faults += [{"scenario": f"story: {d.event} twice", "held": not d.problems(), **f.as_dict()}
               for d in story.duplicates for f in d.faults]
    faults += [{"scenario": c.name, "held": not c.problems(), **f.as_dict()} for c in counted for f in c.faults]
    inputs = [o.as_dict() for o in [*catalogue.outcomes, *events, *story.payloads]]
    traffic = [a for s in story.steps for a in s.answers or []] + [a for d in story.duplicates for a in d.answers]
    canary = sum(s.new_variant_invocations for s in story.steps if s.step.canary_errors)
    return {
        "size": size.name, "seconds": round(seconds, 1),
        "problems": story.problems() + catalogue.problems() + burst_.problems() + storm_.problems()
        + [f"{c.name}: {p}" for c in counted for p in c.problems()]
        + [f"{o.name}: {o.problem}" for o in events if o.problem],
        "faults": faults,
        "inputs": inputs,
        "traffic": {"requests": len(traffic), "answered": sum(a.status == 200 for a in traffic),
                    "server_errors": sum(a.status >= 500 for a in traffic),
                    "requests_to_failing_canaries": canary},
        "duplicates": [{"event": d.event, "deliveries": d.deliveries, "runs_started": d.started, "outcome": d.outcome}
                       for d in story.duplicates],
        "burst": burst_.summary(),
        "storm": storm_.summary(),
    }


def table(result: dict[str, Any]) -> str:
    faults, inputs, burst_, storm_ = result["faults"], result["inputs"], result["burst"], result["storm"]
    traffic = result["traffic"]
    rows = [
        ("faults injected", f"{len(faults)} (fired {sum(f['fired'] for f in faults)} times)"),
        ("faults survived as promised", f"{sum(f['held'] for f in faults)} of {len(faults)}"),
        ("hostile inputs tried", str(len(inputs))),
        ("rejected correctly", f"{sum(i['held'] for i in inputs)} of {len(inputs)}"),
        ("requests during the faults", f"{traffic['requests']}, {traffic['answered']} answered; "
                                       f"{traffic['server_errors']} server errors, all from a failing canary "
                                       f"before its alarm rolled it back ({traffic['requests_to_failing_canaries']} "
                                       "requests reached it)"),
        *[(f"duplicate {d['event']}", f"{d['deliveries']} deliveries, {d['runs_started']} run started")
          for d in result["duplicates"]],
        ("uploads in the burst", f"{burst_['deliveries']} ({burst_['redeliveries']} redelivered) across "
                                 f"{len(burst_['in_flight_max'])} models in {burst_['seconds']} s: "
                                 f"{burst_['datasets']} datasets, {burst_['quarantined']} quarantined"),
        ("uploads lost", str(burst_["lost"])),
        ("runs in flight per model, max", f"{max(burst_['in_flight_max'].values())} ({burst_['runs']} runs)"),
        ("retrains vs cap", f"{storm_['retrains']} in {storm_['simulated_hours']} h of drift reported every "
                            f"{storm_['tick_minutes']} min (cap {storm_['daily_cap']}/day, cooldown "
                            f"{storm_['cooldown_minutes']} min; held back by the cooldown "
                            f"{storm_['suppressed'].get('cooldown', 0)}, by the cap "
                            f"{storm_['suppressed'].get('daily_cap', 0)})"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += ["", "problems:" if result["problems"] else "every promise held"]
    lines += [f"  - {p}" for p in result["problems"]]
    return "\n".join(lines)


def run_all(work: Path, size: Sizes, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Every scenario, each on a fresh local cloud under `work`."""
    started = time.monotonic()

    def cloud(name: str) -> LocalCloud:
        echo(f"{name} ...")
        return LocalCloud(work / name / "cloud")

    with cloud("story") as c:
        story = serving_story(c, work / "story" / "data", size)
    with cloud("hostile-uploads") as c:
        catalogue = hostile_uploads(c, work / "hostile-uploads" / "data")
    with cloud("hostile-events") as c:
        events = hostile_events(c)
    with cloud("burst") as c:
        burst_ = burst(c, size.burst_uploads, size.burst_trains)
    with cloud("storm") as c:
        storm_ = storm(c, work / "storm" / "data", size.storm_hours, size.storm_tick_minutes)
    counted = []
    for name, scenario in (("crash-ingest", crash_in_ingest), ("crash-pipeline", crash_in_pipeline),
                           ("throttle-pipeline", throttle_in_pipeline)):
        with cloud(name) as c:
            inbox = Inbox(c)
            counted.append(scenario(c, work / name / "data", inbox.read))
    return figures(story, catalogue, events, burst_, storm_, counted, size, time.monotonic() - started)


class Inbox:
    """The notification topic read through an SQS queue subscribed to it, as an operator's inbox would."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._sqs = cloud.client("sqs")
        self._url = self._sqs.create_queue(QueueName="operator-inbox")["QueueUrl"]
        arn = self._sqs.get_queue_attributes(QueueUrl=self._url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        cloud.client("sns").subscribe(TopicArn=cloud.template.ref("NotifyTopic"), Protocol="sqs", Endpoint=arn,
                                      Attributes={"RawMessageDelivery": "true"})
        self.messages: list[dict[str, Any]] = []

    def read(self) -> list[dict[str, Any]]:
        """Every notification so far."""
        while True:
            batch = self._sqs.receive_message(QueueUrl=self._url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return list(self.messages)
            self.messages += [json.loads(m["Body"]) for m in batch]
            self._sqs.delete_message_batch(QueueUrl=self._url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when every promise held, 1 when one did not (the faults themselves are on purpose)."""
    parser = argparse.ArgumentParser(prog="python -m selfheal.reliability", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the full sizes (200 uploads, 48 hours of storm)")
    parser.add_argument("--out", type=Path, default=Path("out"), help="writes <out>/reliability.json")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    size = sizes(args.full or None)
    # Failed states and refused calls are on purpose here: what the libraries log about them goes to a file.
    with library_logs_to(out / "reliability" / "logs") as log:
        result = run_all(out / "reliability", size, echo=lambda line: print(line, flush=True))
    (out / "reliability.json").write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    print(f"\nwritten to {out / 'reliability.json'} ({result['seconds']} s, {size.name} sizes); "
          f"library logs in {log}")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
