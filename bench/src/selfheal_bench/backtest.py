"""`selfheal backtest`: replay a model's history under retraining policies, each on a fresh local cloud.

The history is a scenario whose steps say when they happen (`at`). The replay moves a simulated clock
(simclock.py) to each step's time and runs the step as `local run` does; between steps it fires the
monitoring schedule the DeployPipeline created, at the times its rate expression gives, as EventBridge
Scheduler would. Every decision is the product's own (the same template, state machines, handlers and jobs);
a policy is only a change to the model's configuration, or what a user would do:
- configured: the configuration as given;
- never: the first model only: from its first deployment on, the trigger waits for more rows than any
  history holds (trigger.min_new_rows) and retrain.on_violation is none;
- always: retrain on every new labelled batch, no guard rails: each labelled batch (its traffic joined
  with its labels) is uploaded as a dataset with trigger every_upload, and the monitor may retrain with
  cooldown 0 and the highest daily cap.
What each policy did is read back from the ledger (MONITOR, RUN and ENDPOINT items) and the job records: see
backtest_figures.py for the arithmetic. The realized metric of a labelled batch is the one the product's quality
job reported in the MONITOR item of the monitoring execution that judged that batch alone; a batch no execution
judged so (its model was replaced before the next scheduled monitor, as `always` does, or the history ended
first) is scored with the same job's code (ml/quality.py) over its captured predictions and labels, and its
timeline point says so.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from selfheal_shared.config import load_config
from selfheal_shared.errors import ConfigError
from selfheal_shared.ledger_items import ENDPOINT, MONITOR, RUN, sort_key

from selfheal.project import find_project

from . import backtest_figures as figures
from .backtest_html import write_backtest_html
from .backtest_parallel import replay_policies
from .code_roots import import_from
from .html_report import write_html
from .localcloud import LocalCloud
from .localcloud.cloud import IdleTimeout
from .report import build_report, ledger_items, problems
from .runner import STEP_TIMEOUT_SECONDS, Print, Seen, run_step, send_labels
from .scenario import INFERENCE_ID, Scenario, Step
from .simclock import SimulatedClock, simulated_time

POLICIES = ("configured", "never", "always")
# A zero-length first window (the schedule fired at the deployment's very instant) would fail the drift job's
# --start-time < --end-time check: on AWS time passes between the two; Scheduler fires within the minute.
SCHEDULER_PRECISION = timedelta(minutes=1)
NEVER_AGAIN_ROWS = 10**12  # trigger.min_new_rows's maximum: no history reaches it
_RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
_RATE_UNIT = {"minute": "minutes", "hour": "hours", "day": "days"}


class BacktestError(ValueError):
    """The backtest cannot be run as asked (a policy, a schedule, a price); the message says why."""


def parse_policies(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in POLICIES]
    if unknown or not names:
        raise BacktestError(f"--policies: unknown {', '.join(unknown) or '(none given)'} "
                            f"(known: {', '.join(POLICIES)})")
    return list(dict.fromkeys(names))


def policy_config(policy: str, config: dict[str, Any], first_deployed: bool = False) -> dict[str, Any]:
    """The model configuration a policy runs with (before and after the first deployment)."""
    changed = copy.deepcopy(config)
    if policy == "never" and first_deployed:
        changed["trigger"] = {"mode": "min_new_rows", "min_new_rows": NEVER_AGAIN_ROWS}
        changed["retrain"] = changed.get("retrain", {}) | {"on_violation": "none"}
    elif policy == "always":
        changed["trigger"] = {"mode": "every_upload"}
        changed["retrain"] = changed.get("retrain", {}) | {"on_violation": "retrain", "cooldown_minutes": 0,
                                                           "daily_cap": 96}
    return changed


def schedule_interval(expression: str) -> timedelta:
    found = _RATE.fullmatch(expression)
    if not found:
        raise BacktestError(f"monitor.schedule_expression {expression!r}: a backtest fires rate(...) schedules "
                            "only; write the schedule as a rate, e.g. rate(1 day)")
    return timedelta(**{_RATE_UNIT[found.group(2).rstrip("s")]: int(found.group(1))})


def check(scenario: Scenario, policies: list[str], prices: figures.Prices) -> None:
    """Refuse, before anything runs, what a replay could not finish: every policy's configuration must be
    valid, its schedule a rate, and its instance types priced."""
    for model, config in scenario.models.items():
        for policy in policies:
            for first_deployed in (False, True):
                try:
                    valid = load_config(policy_config(policy, config, first_deployed))
                except ConfigError as error:
                    raise BacktestError(f"models.{model} under policy {policy}: {error}") from None
                schedule_interval(valid.monitor.schedule_expression)
                try:
                    prices.hourly("training", valid.training.instance_type)
                    prices.hourly("processing", valid.training.processing_instance_type)
                    prices.hourly("hosting", valid.deploy.instance_type)
                except figures.PriceMissing as error:
                    raise BacktestError(f"models.{model}: {error}") from None


def run_backtest(scenario: Scenario, out: Path, policies: list[str], echo: Print = print,
                 workers: int | None = None) -> dict[str, Any]:
    """Replay the history under each policy, each in a process of its own (backtest_parallel.py), and write
    backtest.json and backtest.html from what they found. A policy whose replay failed has no figures: `replays`
    says why."""
    prices = figures.Prices.load()
    check(scenario, policies, prices)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = replay_policies(scenario, out, policies, prices, echo, workers=workers)
    document = {"policies": {name: o.result for name, o in outcomes.items() if o.result is not None},
                "history": {"start": figures._iso(scenario.steps[0].at), "end": figures._iso(scenario.steps[-1].at),
                            "steps": len(scenario.steps)},
                "prices": {"source": prices.source, "taken": prices.taken, "file": str(figures.PRICES.name)},
                "replays": {name: outcome.record(out) for name, outcome in outcomes.items()}}
    (out / "backtest.json").write_text(json.dumps(document, indent=2, default=str))
    write_backtest_html(document, out / "backtest.html")
    return document


@dataclass
class Served:
    """Who answered a traffic batch: when, and which model package (with the run that made it)."""

    at: datetime
    model_package_arn: str | None
    run_id: str | None


@dataclass
class Labelled:
    """A batch of labels: when they arrived, who answered the traffic they label, and where they were written."""

    at: datetime
    served: Served
    ground_truth_key: str
    count: int


@dataclass
class Replay:
    scenario: Scenario
    policy: str
    out: Path
    prices: figures.Prices
    echo: Print
    served: dict[str, Served] = field(default_factory=dict)  # inference id -> who answered it
    requests: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> traffic rows by inference id
    labelled: dict[str, list[Labelled]] = field(default_factory=dict)
    next_fire: dict[str, datetime] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)  # models whose `never` configuration is in force
    timeouts: list[str] = field(default_factory=list)

    def run(self, cloud_factory: Callable[[Path], LocalCloud]) -> dict[str, Any]:
        steps = self.scenario.steps
        clock = SimulatedClock(steps[0].at)
        traffic: list[dict[str, Any]] = []
        with cloud_factory(self.out / "cloud") as cloud, simulated_time(cloud, clock):
            for fault in self.scenario.faults:
                cloud.faults.add(fault["target"], fault["kind"], fault.get("times", 1))
            for model, config in self.scenario.models.items():
                cloud.put_model_config(model, policy_config(self.policy, config))
            seen = Seen()
            for index, step in enumerate(steps, start=1):
                if not self.fire_schedules(cloud, clock, step.at, seen, inclusive=False):
                    break
                clock.advance_to(step.at)
                self.echo(f"  {step.at:%Y-%m-%d %H:%M} step {index}/{len(steps)}: {step.describe()}")
                try:
                    self.run_step(cloud, step, traffic)
                except ValueError as exc:  # as local run: nothing pending approval, say
                    self.echo(f"    skipped: {exc}")
                if not self.settle(cloud, f"step {index} ({step.describe()})", seen):
                    break
            else:
                self.fire_schedules(cloud, clock, steps[-1].at, seen, inclusive=True)
            report = build_report(cloud, self.scenario.models, traffic)
            summary = self.summarize(cloud, report, clock.now)
        report["problems"] = problems(report) + self.timeouts
        (self.out / "report.json").write_text(json.dumps(report, indent=2, default=str))
        write_html(report, self.out / "report.html", cloud.root / "statemachines")
        return summary | {"problems": report["problems"]}

    # -- the history ---------------------------------------------------------------------------------

    def run_step(self, cloud: LocalCloud, step: Step, traffic: list[dict[str, Any]]) -> None:
        if step.kind != "labels":
            run_step(cloud, step, self.scenario, traffic, self.echo_indented)
            if step.kind == "traffic":
                self.remember_traffic(cloud, step)
            return
        assert step.file is not None
        target = str(self.scenario.models[step.model].get("target"))
        key, count = send_labels(cloud, step.model, step.file, target)
        self.echo(f"    labels {step.model}: {count} written to {key}")
        self.remember_labels(step, key, count)
        if self.policy == "always":
            self.upload_labelled(cloud, step, target)

    def echo_indented(self, line: str) -> None:
        self.echo("  " + line)

    def remember_traffic(self, cloud: LocalCloud, step: Step) -> None:
        assert step.file is not None
        frame = pd.read_csv(step.file, dtype=str, keep_default_na=False)
        if INFERENCE_ID not in frame.columns:
            return
        endpoint = ledger_item(cloud, step.model, ENDPOINT) or {}
        served = Served(step.at, endpoint.get("model_package_arn"), endpoint.get("run_id"))
        self.served |= dict.fromkeys(frame[INFERENCE_ID], served)
        self.requests[step.model] = pd.concat([self.requests.get(step.model), frame.set_index(INFERENCE_ID)])

    def settle(self, cloud: LocalCloud, what: str, seen: Seen) -> bool:
        """Wait until everything the step started has finished (real time, bounded); then the policy's
        follow-up: `never` freezes a model's configuration once it first serves."""
        try:
            cloud.wait_idle(timeout=STEP_TIMEOUT_SECONDS)
        except IdleTimeout as exc:
            self.timeouts.append(f"{what}: {exc}")
            self.echo(f"    gave up waiting: {exc}")
            return False
        for line in seen.new_lines(cloud):
            self.echo("    " + line.replace("\n", "\n  "))
        if self.policy == "never":
            for model, config in self.scenario.models.items():
                if model not in self.frozen and (ledger_item(cloud, model, ENDPOINT) or {}).get("model_package_arn"):
                    cloud.put_model_config(model, policy_config("never", config, first_deployed=True))
                    self.frozen.add(model)
        return True

    def fire_schedules(self, cloud: LocalCloud, clock: SimulatedClock, until: datetime, seen: Seen,
                       inclusive: bool) -> bool:
        """Start MonitorPipeline at each time the model's schedule comes due before `until` (at it, too, when
        `inclusive`), as EventBridge Scheduler would: a rate schedule without a StartDate (RecordDeployment sets
        none) invokes its target at once, then every interval (Scheduler User Guide, "Schedule types",
        rate-based schedules), each within the minute (its 60-second precision): here a minute after."""
        while (due := self.next_due(cloud, clock)) is not None:
            model, at, name, group = due
            if at > until or (at == until and not inclusive):
                return True
            clock.advance_to(at)
            self.echo(f"  {at:%Y-%m-%d %H:%M} schedule {name}: MonitorPipeline")
            cloud.hosting.flush_capture()  # what the endpoint captured so far is in S3, as SageMaker writes it
            cloud.fire_schedule(name, group)
            self.next_fire[model] = at + self.interval(cloud, name, group)
            if not self.settle(cloud, f"monitoring {model} at {at:%Y-%m-%d %H:%M}", seen):
                return False
        return True

    def next_due(self, cloud: LocalCloud, clock: SimulatedClock) -> tuple[str, datetime, str, str] | None:
        found = []
        for schedule in cloud.client("scheduler").list_schedules()["Schedules"]:
            model = self.model_of(cloud, schedule["Name"])
            if model is None:
                continue
            if model not in self.next_fire:  # first seen after the step that created it: due at once
                self.next_fire[model] = clock.now + SCHEDULER_PRECISION
            found.append((model, self.next_fire[model], schedule["Name"], schedule["GroupName"]))
        return min(found, key=lambda item: item[1]) if found else None

    def model_of(self, cloud: LocalCloud, schedule: str) -> str | None:
        return next((model for model in self.scenario.models
                     if (ledger_item(cloud, model, ENDPOINT) or {}).get("schedule_name") == schedule), None)

    @staticmethod
    def interval(cloud: LocalCloud, name: str, group: str) -> timedelta:
        schedule = cloud.client("scheduler").get_schedule(Name=name, GroupName=group)
        return schedule_interval(schedule["ScheduleExpression"])

    # -- what the policy did ---------------------------------------------------------------------------

    def remember_labels(self, step: Step, ground_truth_key: str, count: int) -> None:
        """Which served batch these labels judge (scored once the history is over: see points)."""
        ids = pd.read_csv(step.file, dtype=str, keep_default_na=False)[INFERENCE_ID]
        served = next((self.served[i] for i in ids if i in self.served), None)
        if served is None or served.run_id is None:
            self.echo("    (no served traffic to score these labels against)")
            return
        self.labelled.setdefault(step.model, []).append(Labelled(step.at, served, ground_truth_key, count))

    def points(self, cloud: LocalCloud, model: str, metric: str, rollouts: list[datetime]) -> list[figures.Point]:
        """The realized metric of each labelled batch: the MONITOR item that judged it, else scored here."""
        monitors = sorted(ledger_items(cloud, model, "MONITOR#"), key=lambda item: item["sk"])
        batches = self.labelled.get(model, [])
        judges = {index: judging_monitor(batch, monitors, rollouts) for index, batch in enumerate(batches)}
        claims = [item["sk"] for item in judges.values() if item is not None]
        found = []
        for index, batch in enumerate(batches):
            item = judges[index]
            scored_from = None
            if item is not None and claims.count(item["sk"]) == 1:
                value, source = item["quality"]["metrics"].get(metric), item["sk"]
            else:
                value, scored_from = realized_metric(cloud, model, batch.served.run_id or "", batch.ground_truth_key,
                                                     metric)
                source = "backtest: " + (
                    "no monitoring execution judged this batch alone" if item is not None else
                    "no monitoring execution judged this batch (its model was replaced first, or the history ended)")
            found.append(figures.Point(batch.at, batch.served.at, batch.served.model_package_arn,
                                       None if value is None else round(float(value), 6), source, scored_from))
        return found

    def upload_labelled(self, cloud: LocalCloud, step: Step, target: str) -> None:
        """`always`: the labelled batch (the requests' features with their labels) becomes a dataset upload."""
        assert step.file is not None
        labels = pd.read_csv(step.file, dtype=str, keep_default_na=False).set_index(INFERENCE_ID)[target]
        requests = self.requests.get(step.model)
        if requests is None:
            return
        rows = requests.drop(columns=[target], errors="ignore").join(labels, how="inner")
        path = self.out / "labelled" / f"labelled-{step.at:%Y%m%dT%H%M}-{step.file.stem}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(path, index=False)
        cloud.upload(step.model, path)
        self.echo(f"    always: uploaded the labelled batch, {len(rows)} rows, as {path.name}")

    def summarize(self, cloud: LocalCloud, report: dict[str, Any], end: datetime) -> dict[str, Any]:
        model = next(iter(self.scenario.models))  # the figures are per policy: of the scenario's (first) model
        config = load_config(self.scenario.models[model])
        endpoint = ledger_item(cloud, model, ENDPOINT) or {}
        rollouts = [h for h in endpoint.get("history", []) if h.get("outcome") == "deployed"]
        rollout_times = [parse_time(h["at"]) for h in rollouts]
        points = self.points(cloud, model, config.metric.name, rollout_times)
        jobs = job_records(cloud)
        cost = figures.costs(jobs, fleets(cloud, rollouts, end), self.prices)
        runs = sorted(ledger_items(cloud, model, RUN), key=lambda run: run.get("started_at", ""))
        return {
            "model": model, "metric": config.metric.name, "threshold": config.metric.threshold,
            "retrains": max(len(runs) - 1, 0),
            "deployments": len(rollouts),
            "compute_seconds": round(sum(job.seconds for job in jobs), 3),
            "cost_usd": cost["total"], "cost_breakdown_usd": cost,
            "mean_metric": figures.mean_metric(points),
            "hours_below_threshold": figures.hours_below(points, rollout_times, end, config.metric.threshold,
                                                         config.greater_is_better),
            "decisions": decisions(cloud, model),
            "runs": [{"run_id": r.get("run_id"), "trigger": r.get("trigger"), "started_at": r.get("started_at"),
                      "decision": r.get("decision"), "metrics": r.get("metrics") or {}} for r in runs],
            "rollouts": [{"at": h["at"], "model_package_arn": h.get("model_package_arn")} for h in rollouts],
            "timeline": figures.timeline(points),
            "jobs": [vars(job) for job in jobs],
        }


def judging_monitor(batch: Labelled, monitors: list[dict[str, Any]], rollouts: list[datetime],
                    ) -> dict[str, Any] | None:
    """The MONITOR item whose quality job judged the batch: the first execution after its labels arrived, if the
    model that answered the batch still served then (a quality window holds the serving model's predictions only)
    and its labels were all matched there (more would be other batches' too)."""
    after = next((item for item in monitors if parse_time(item["at"]) >= batch.at), None)
    if after is None or not (after.get("quality") or {}).get("metrics"):
        return None
    at = parse_time(after["at"])
    if any(batch.served.at < rollout < at for rollout in rollouts):
        return None
    return after if int(after["quality"]["labels"].get("matched", 0)) == batch.count else None


def ledger_item(cloud: LocalCloud, model: str, sk: str) -> dict[str, Any] | None:
    return next((item for item in ledger_items(cloud, model, sk) if item["sk"] == sk), None)


def decisions(cloud: LocalCloud, model: str) -> list[dict[str, Any]]:
    """Every monitoring decision with its reason: the MONITOR items, oldest first."""
    keys = ("at", "execution", "status", "action", "reason", "suppressed", "run_id")
    return [{key: item.get(key) for key in keys} | {"realized": (item.get("quality") or {}).get("metrics", {})}
            for item in sorted(ledger_items(cloud, model, MONITOR), key=lambda item: item["sk"])]


def job_records(cloud: LocalCloud) -> list[figures.JobRecord]:
    found = []
    for job in cloud.jobs.jobs.values():
        resources = (job.request["ProcessingResources"]["ClusterConfig"] if job.kind == "processing"
                     else job.request["ResourceConfig"])
        found.append(figures.JobRecord(job.name, job.kind, resources["InstanceType"], int(resources["InstanceCount"]),
                                       round(job.compute_seconds, 3)))
    return found


def fleets(cloud: LocalCloud, rollouts: list[dict[str, Any]], end: datetime) -> list[figures.Serving]:
    """The endpoint's fleet after each rollout, until the next one or the end of the history (the endpoint
    configuration's instance type and initial count; the short overlap of a blue/green update is not counted)."""
    found = []
    sagemaker = cloud.client("sagemaker")
    for index, rollout in enumerate(rollouts):
        variant = sagemaker.describe_endpoint_config(
            EndpointConfigName=rollout["endpoint_config"])["ProductionVariants"][0]
        until = parse_time(rollouts[index + 1]["at"]) if index + 1 < len(rollouts) else end
        found.append(figures.Serving(variant["InstanceType"], int(variant["InitialInstanceCount"]),
                                     parse_time(rollout["at"]), until))
    return found


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def realized_metric(cloud: LocalCloud, model: str, run_id: str, ground_truth_key: str,
                    metric: str) -> tuple[float | None, dict[str, Any]]:
    """ml/quality.py's join of the model's captured predictions with one ground-truth file, and its metric; with the
    records it was scored from (the ground truth, the capture files, the run's quality baseline, the rows joined)."""
    quality = _quality()
    s3 = cloud.client("s3")
    run = ledger_item(cloud, model, sort_key(RUN, run_id)) or {}
    artifacts = str(run["artifacts_uri"]).removeprefix(f"s3://{cloud.bucket}/").rstrip("/")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        baseline = _download(s3, cloud.bucket, f"{artifacts}/evaluation/quality_baseline.json", work / "baseline")
        captures = [_download(s3, cloud.bucket, key, work / "capture") for key in _keys(s3, cloud.bucket,
                                                                                         f"capture/{model}/")]
        truth = _download(s3, cloud.bucket, ground_truth_key, work / "ground_truth")
        job = quality.Join(quality.Baseline.read(baseline),
                           quality.Window(None, None, timedelta(0), datetime.now().astimezone()))
        for _ in quality.run_join(job, captures, [truth], work):
            pass
    value = job.realized.metrics().get(metric) if job.counts.matched else None
    scored_from = {"ground_truth": f"s3://{cloud.bucket}/{ground_truth_key}",
                   "capture": f"s3://{cloud.bucket}/capture/{model}/", "capture_files": len(captures),
                   "quality_baseline": f"s3://{cloud.bucket}/{artifacts}/evaluation/quality_baseline.json",
                   "matched": job.counts.matched}
    return (None if value is None else round(float(value), 6)), scored_from


@functools.cache
def _quality() -> ModuleType:
    """ml/quality.py, imported as its container does (beside its siblings), once."""
    return import_from(find_project() / "ml", "quality.py", "selfheal_backtest_quality", isolated=True)


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from (item["Key"] for item in page.get("Contents", []))


def _download(s3: Any, bucket: str, key: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / key.replace("/", "_")
    s3.download_file(bucket, key, str(path))
    return path
