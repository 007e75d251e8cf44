"""The serving story: one model's life under faults, while a client keeps sending traffic."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..localcloud import LocalCloud
from ..report import build_report, endpoint_name, executions, ledger_items
from .core import (
    HANG,
    IDLE_TIMEOUT,
    MODEL,
    ROWS,
    STORY_CONFIG,
    TRANSIENT,
    Answer,
    Injected,
    Injection,
    Sizes,
    Traffic,
    injected,
    request_rows,
    write_csv,
)
from .hostile import InputOutcome, hostile_payloads

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
    # The original relation again: the champion, retrained on the drifted one, scores it badly, so the new model
    # beats it by far (on the same drifted relation, which model won was the split's luck).
    cloud.upload(MODEL, write_csv(folder, "approval.csv", ROWS, seed=8, shift=0.0))
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


