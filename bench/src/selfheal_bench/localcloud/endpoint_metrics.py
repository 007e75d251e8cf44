"""An endpoint's request metrics as SageMaker publishes them, and CloudWatch alarms evaluated on them.

SageMaker sends one datapoint per InvokeEndpoint request to CloudWatch, in the AWS/SageMaker namespace
("Amazon SageMaker AI metrics in Amazon CloudWatch", endpoint invocation metrics): Invocations (1),
Invocation4XXErrors and Invocation5XXErrors (1 for such a response, else 0), ModelLatency (microseconds),
with the dimensions EndpointName and VariantName, and, for each fleet of a blue/green deployment,
EndpointName, VariantName and EndpointConfigName ("Auto-Rollback Configuration and Monitoring").
Here the same datapoints are kept per fleet, stamped with the local cloud's clock; moto's CloudWatch
lists them (ListMetrics, GetMetricStatistics: one aggregate per minute, as SageMaker publishes them),
and a rollback alarm is evaluated as CloudWatch evaluates a metric alarm: only on the metric and the
exact dimensions it names, with its statistic, over its Period, EvaluationPeriods and DatapointsToAlarm,
missing data treated as TreatMissingData says. An alarm naming a metric or dimension no fleet emits has
no data, so it never fires.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from moto.cloudwatch.models import CloudWatchBackend, MetricAggregatedDatum
from moto.core.common_models import CloudWatchMetricProvider

NAMESPACE = "AWS/SageMaker"
INVOCATIONS, LATENCY = "Invocations", "ModelLatency"
ERRORS_4XX, ERRORS_5XX = "Invocation4XXErrors", "Invocation5XXErrors"
# Metrics sent as 1 or 0 with every request: their sample count is the request count.
_PER_REQUEST = {ERRORS_4XX, ERRORS_5XX}


class SimulatedTime(Protocol):
    def now(self) -> float: ...


@dataclass(frozen=True)
class Datapoint:
    at: float  # simulated seconds (the local cloud's clock)
    when: dt.datetime  # wall time, for CloudWatch's timestamps
    metric: str
    value: float


class _Count:
    """A counter InvokeEndpoint increments (`stats.errors_5xx += 1`): each increment is a datapoint."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def __get__(self, metrics: VariantMetrics | None, owner: type) -> Any:
        return self if metrics is None else metrics.counts[self.metric]

    def __set__(self, metrics: VariantMetrics, value: int) -> None:
        for _ in range(value - metrics.counts[self.metric]):
            metrics.record(self.metric, 1.0)


class _Latencies(list[float]):
    """Answered requests' model latency (ms), each also a ModelLatency datapoint in microseconds."""

    def __init__(self, metrics: VariantMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def append(self, milliseconds: float) -> None:
        super().append(milliseconds)
        self._metrics.record(LATENCY, milliseconds * 1000)


class VariantMetrics:
    """One fleet's (endpoint config's) variant. invoke() counts requests with `+=` and `latency_ms.append`."""

    invocations = _Count(INVOCATIONS)
    errors_4xx = _Count(ERRORS_4XX)
    errors_5xx = _Count(ERRORS_5XX)

    def __init__(self, clock: SimulatedTime | None = None) -> None:
        self.clock = clock
        self.datapoints: list[Datapoint] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.latency_ms = _Latencies(self)
        self._lock = threading.Lock()

    def record(self, metric: str, value: float) -> None:
        at = self.clock.now() if self.clock else 0.0
        with self._lock:
            self.datapoints.append(Datapoint(at, dt.datetime.now(dt.UTC), metric, value))
            self.counts[metric] += 1

    def between(self, start: float, end: float) -> list[Datapoint]:
        with self._lock:
            return [p for p in self.datapoints if start <= p.at < end]

    def snapshot(self) -> list[Datapoint]:
        with self._lock:
            return list(self.datapoints)


class FleetMetrics(dict[str, VariantMetrics]):
    """An endpoint's metrics per "<endpoint config>/<variant>"; a fleet's new metrics get the clock."""

    def __init__(self, clock: SimulatedTime) -> None:
        super().__init__()
        self._clock = clock

    def setdefault(self, key: str, default: VariantMetrics | None = None) -> VariantMetrics:
        if key not in self:
            fresh = default or VariantMetrics()
            fresh.clock = self._clock
            self[key] = fresh
        return self[key]

    def dimensions(self, endpoint: str) -> Iterator[tuple[dict[str, str], VariantMetrics]]:
        """Each fleet with both dimension sets SageMaker publishes its datapoints under."""
        for key, metrics in self.items():
            config, variant = key.rsplit("/", 1)
            base = {"EndpointName": endpoint, "VariantName": variant}
            yield base, metrics
            yield base | {"EndpointConfigName": config}, metrics


# -- CloudWatch's view ----------------------------------------------------------------------------------


def statistic(values: list[float], requests: int, metric: str, name: str) -> float | None:
    """A CloudWatch statistic over one period's datapoints; None when the period has no data.
    Per-request metrics count their zero datapoints too: their sample count is `requests`."""
    samples = requests if metric in _PER_REQUEST else len(values)
    if samples == 0:
        return None
    if name == "Sum":
        return sum(values)
    if name == "SampleCount":
        return float(samples)
    if name == "Average":
        return sum(values) / samples
    padded = values + [0.0] * (samples - len(values))
    if name == "Minimum":
        return min(padded)
    if name == "Maximum":
        return max(padded)
    if name.startswith("p"):  # ExtendedStatistic pNN
        ordered = sorted(padded)
        return ordered[min(len(ordered) - 1, math.ceil(float(name[1:]) / 100 * len(ordered)) - 1)]
    raise ValueError(f"statistic {name} is not one CloudWatch computes")


def _breaches(value: float, operator: str, threshold: float) -> bool:
    return {"GreaterThanThreshold": value > threshold, "GreaterThanOrEqualToThreshold": value >= threshold,
            "LessThanThreshold": value < threshold, "LessThanOrEqualToThreshold": value <= threshold}[operator]


@dataclass
class AlarmEvaluation:
    """One evaluation of a metric alarm: the value of each of its evaluation periods, newest first."""

    alarm: dict[str, Any]
    values: list[float | None] = field(default_factory=list)

    @property
    def in_alarm(self) -> bool:
        alarm = self.alarm
        treat = alarm.get("TreatMissingData", "missing")
        breaching = [None if v is None else _breaches(v, alarm["ComparisonOperator"], alarm["Threshold"])
                     for v in self.values]
        if treat == "breaching":
            breaching = [True if b is None else b for b in breaching]
        elif treat == "notBreaching":
            breaching = [False if b is None else b for b in breaching]
        needed = alarm.get("DatapointsToAlarm") or alarm["EvaluationPeriods"]
        return sum(1 for b in breaching if b) >= needed


def rollback_alarms(region: str, deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """The metric alarms a DeploymentConfig's AutoRollbackConfiguration names (DescribeAlarms)."""
    names = [a["AlarmName"] for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])]
    if not names:
        return []
    return boto3.client("cloudwatch", region_name=region).describe_alarms(AlarmNames=names)["MetricAlarms"]


def evaluate(alarm: dict[str, Any], endpoint: str, fleets: FleetMetrics, now: float) -> AlarmEvaluation:
    """Evaluate a metric alarm (DescribeAlarms' MetricAlarms entry) at simulated time `now`."""
    wanted = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    sources = [metrics for dims, metrics in fleets.dimensions(endpoint) if dims == wanted] \
        if alarm.get("Namespace") == NAMESPACE else []
    name = alarm.get("Statistic") or alarm["ExtendedStatistic"]
    period, evaluation = alarm["Period"], AlarmEvaluation(alarm)
    for i in range(alarm["EvaluationPeriods"]):
        end = now - i * period
        points = [p for source in sources for p in source.between(end - period, end)]
        values = [p.value for p in points if p.metric == alarm["MetricName"]]
        requests = sum(1 for p in points if p.metric == INVOCATIONS)
        evaluation.values.append(statistic(values, requests, alarm["MetricName"], name))
    return evaluation


class PublishedMetrics(CloudWatchMetricProvider):
    """What moto's CloudWatch lists: every running endpoint's datapoints, one aggregate per minute."""

    sources: list[Any] = []  # objects with .published(): (dimensions, VariantMetrics) pairs

    @staticmethod
    def get_cloudwatch_metrics(account_id: str, region: str) -> list[MetricAggregatedDatum]:
        data = []
        for source in PublishedMetrics.sources:
            for dimensions, metrics in source.published():
                data.extend(_per_minute(dimensions, metrics.snapshot()))
        return data


def _per_minute(dimensions: dict[str, str], points: Iterable[Datapoint]) -> list[MetricAggregatedDatum]:
    buckets: dict[tuple[str, dt.datetime], list[float]] = defaultdict(list)
    requests: dict[dt.datetime, int] = defaultdict(int)
    for point in points:
        minute = point.when.replace(second=0, microsecond=0, tzinfo=None)  # moto keeps naive UTC
        buckets[(point.metric, minute)].append(point.value)
        if point.metric == INVOCATIONS:
            requests[minute] += 1
            for metric in _PER_REQUEST:
                buckets.setdefault((metric, minute), [])
    listed = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    out = []
    for (metric, minute), values in buckets.items():
        samples = requests[minute] if metric in _PER_REQUEST else len(values)
        padded = values + [0.0] * (samples - len(values))
        out.append(MetricAggregatedDatum(NAMESPACE, metric, min_stat=min(padded), max_stat=max(padded),
                                         sample_count=samples, sum_stat=sum(values), dimensions=listed,
                                         timestamp=minute, unit="Microseconds" if metric == LATENCY else "None"))
    return out


def publish(source: Any) -> Callable[[], None]:
    """Let moto's CloudWatch list `source.published()` and answer statistics on it; returns the undo."""
    PublishedMetrics.sources.append(source)
    undo_statistics = _exact_dimensions()

    def undo() -> None:
        undo_statistics()
        PublishedMetrics.sources.remove(source)

    return undo


def _exact_dimensions() -> Callable[[], None]:
    """GetMetricStatistics as CloudWatch answers it: "each unique combination of dimensions is a separate
    metric", so the request's dimensions must match a metric's exactly (moto matches any superset, which
    would count a fleet's requests once per dimension set SageMaker publishes them under). Returns the undo."""
    original = CloudWatchBackend.get_metric_statistics
    lock = threading.Lock()

    def get_metric_statistics(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> Any:
        dimensions = kwargs.get("dimensions", args[6] if len(args) > 6 else [])
        wanted = {(d["Name"], d["Value"]) for d in dimensions or []}
        everything = self.get_all_metrics
        with lock:
            self.get_all_metrics = lambda: [m for m in everything()  # type: ignore[method-assign]
                                            if {(d.name, d.value) for d in m.dimensions} == wanted]
            try:
                return original(self, *args, **kwargs)
            finally:
                del self.get_all_metrics

    CloudWatchBackend.get_metric_statistics = get_metric_statistics  # type: ignore[method-assign]

    def undo() -> None:
        CloudWatchBackend.get_metric_statistics = original  # type: ignore[method-assign]

    return undo
