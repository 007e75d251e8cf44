"""The storm: a monitor that reports violations every few minutes for hours of simulated time."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..localcloud import LocalCloud
from ..report import build_report, endpoint_name
from ..simclock import SimulatedClock, simulated_time
from .core import IDLE_TIMEOUT, STORY_CONFIG, Injection, injected, write_csv

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


