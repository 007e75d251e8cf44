"""The arithmetic of a backtest, apart from the replay: prices, cost, the metric over time.

Every input is a record the replay read from the local cloud (job records, the ENDPOINT item's rollouts,
the realized metric of each labelled batch); nothing here looks at the cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

PRICES = Path(__file__).with_name("prices.yaml")
HOUR = 3600.0


class PriceMissing(ValueError):
    """An instance type the price table does not list."""


@dataclass(frozen=True)
class Prices:
    """On-demand USD per instance-hour, by use (training, processing, hosting) and instance type."""

    table: dict[str, dict[str, float]]
    source: str
    taken: str

    @classmethod
    def load(cls, path: Path = PRICES) -> Prices:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        table = {use: {name: float(price) for name, price in document[use].items()}
                 for use in ("training", "processing", "hosting")}
        return cls(table, str(document["source"]), str(document["taken"]))

    def hourly(self, use: str, instance_type: str) -> float:
        try:
            return self.table[use][instance_type]
        except KeyError:
            raise PriceMissing(f"no {use} price for {instance_type} in {PRICES.name}: add it "
                               f"(from {self.source})") from None


@dataclass(frozen=True)
class JobRecord:
    """One training or processing job as the local cloud recorded it."""

    name: str
    kind: str  # training | processing
    instance_type: str
    instance_count: int
    seconds: float


@dataclass(frozen=True)
class Serving:
    """An endpoint's fleet from `start` to `end` (simulated time)."""

    instance_type: str
    instance_count: int
    start: datetime
    end: datetime

    @property
    def hours(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0) / HOUR


def job_cost(job: JobRecord, prices: Prices) -> float:
    return job.seconds / HOUR * job.instance_count * prices.hourly(job.kind, job.instance_type)


def serving_cost(serving: Serving, prices: Prices) -> float:
    return serving.hours * serving.instance_count * prices.hourly("hosting", serving.instance_type)


def costs(jobs: list[JobRecord], fleets: list[Serving], prices: Prices) -> dict[str, float]:
    """USD by what it paid for: training jobs, processing jobs, endpoint hours, and the total."""
    found = {"training": sum(job_cost(j, prices) for j in jobs if j.kind == "training"),
             "processing": sum(job_cost(j, prices) for j in jobs if j.kind == "processing"),
             "hosting": sum(serving_cost(f, prices) for f in fleets)}
    return {name: round(value, 4) for name, value in found.items()} | {"total": round(sum(found.values()), 4)}


@dataclass(frozen=True)
class Point:
    """The realized metric of the serving model on one labelled batch: served from `served_at`, labelled `at`;
    `source` says who scored it (the MONITOR item's sort key, or the backtest and why); `scored_from`, for a batch
    the backtest scored, the records it scored it from."""

    at: datetime
    served_at: datetime
    model_package_arn: str | None
    metric: float | None
    source: str
    scored_from: dict[str, Any] | None = None


def below(value: float, threshold: float, greater_is_better: bool) -> bool:
    return value < threshold if greater_is_better else value > threshold


def hours_below(points: list[Point], rollouts: list[datetime], end: datetime, threshold: float,
                greater_is_better: bool) -> float:
    """Hours a model measured below the threshold served: each batch's metric holds from its traffic until the
    next batch's traffic, a rollout, or the end of the history, whichever comes first (what a new model does
    before its first labelled batch is unmeasured, and not counted)."""
    measured = sorted((p for p in points if p.metric is not None), key=lambda p: p.served_at)
    total = 0.0
    for index, point in enumerate(measured):
        assert point.metric is not None
        if not below(point.metric, threshold, greater_is_better):
            continue
        stops = [end] + [p.served_at for p in measured[index + 1:]] + [r for r in rollouts if r > point.served_at]
        total += max((min(stops) - point.served_at).total_seconds(), 0.0) / HOUR
    return round(total, 3)


def mean_metric(points: list[Point]) -> float | None:
    """The mean of the realized metric over the labelled batches (each batch counts once)."""
    values = [p.metric for p in points if p.metric is not None]
    return round(sum(values) / len(values), 6) if values else None


def timeline(points: list[Point]) -> list[dict[str, Any]]:
    return [{"at": _iso(p.at), "served_at": _iso(p.served_at), "model_package_arn": p.model_package_arn,
             "metric": p.metric, "source": p.source, "scored_from": p.scored_from} for p in points]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
