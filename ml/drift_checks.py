"""A window against the baseline: the window's accumulators, drift distances, and Model Monitor's checks
(statistics.json, constraint_violations.json, and selfheal's drift_metrics.json)."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings ship beside this script
    sys.path.insert(0, str(HERE))

from accumulators import CategoricalAccumulator, NumericAccumulator  # noqa: E402
from baseline import Baseline, FeatureBaseline  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

# c(alpha) of the two-sample Kolmogorov-Smirnov bound that linf_robust subtracts (alpha ~ 0.003);
# the value awslabs/deequ (Model Monitor's engine) uses in Distance.selectMetrics.
ROBUST_C_ALPHA = 1.8
# Model Monitor flags any window whose completeness is below the baseline's: with 5% missing values in
# training, half of all ordinary windows. selfheal allows for sampling noise: flagged only when more than
# this many standard errors (of the window's fraction present) below; none at a baseline of 100%.
COMPLETENESS_SIGMAS = 3.0
MAX_EXTRA_COLUMNS = 100

# --------------------------------------------------------------------------------------- window accumulator


@dataclass
class WindowAccumulator:
    """Everything kept about a window: per-feature accumulators and a few counters. Mergeable."""

    baseline: Baseline
    rows: int = 0
    records: int = 0
    invalid_records: int = 0
    skipped_records: int = 0  # outside --start-time/--end-time
    first_event: datetime | None = None
    last_event: datetime | None = None
    seen: set[str] = field(default_factory=set)
    extra_columns: set[str] = field(default_factory=set)
    features: dict[str, NumericAccumulator | CategoricalAccumulator] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = self.features or {f.name: f.accumulator() for f in self.baseline.features}

    def update(self, frame: pd.DataFrame) -> None:
        self.rows += len(frame)
        columns = {str(c): c for c in frame.columns}
        self.note_columns(columns)
        for name, accumulator in self.features.items():
            if name in columns:
                accumulator.update(frame[columns[name]])
            else:  # absent from these rows: they count as missing
                accumulator.missing += len(frame)

    def note_columns(self, names: Iterable[str]) -> None:
        for name in names:
            if name in self.features:
                self.seen.add(name)
            elif len(self.extra_columns) < MAX_EXTRA_COLUMNS:
                self.extra_columns.add(name)

    def note_event(self, moment: datetime) -> None:
        if self.first_event is None or moment < self.first_event:
            self.first_event = moment
        if self.last_event is None or moment > self.last_event:
            self.last_event = moment

    def merge(self, other: WindowAccumulator) -> None:
        self.rows += other.rows
        self.records += other.records
        self.invalid_records += other.invalid_records
        self.skipped_records += other.skipped_records
        for moment in (other.first_event, other.last_event):
            if moment is not None:
                self.note_event(moment)
        self.note_columns(other.seen | other.extra_columns)
        for name, accumulator in self.features.items():
            accumulator.merge(other.features[name])  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """Everything merge needs, as JSON: a host's share of a sharded window."""
        return {"baseline": fingerprint(self.baseline), "rows": self.rows, "records": self.records,
                "invalid_records": self.invalid_records, "skipped_records": self.skipped_records,
                "first_event": _iso(self.first_event), "last_event": _iso(self.last_event), "seen": sorted(self.seen),
                "extra_columns": sorted(self.extra_columns),
                "features": {name: acc.to_dict() for name, acc in self.features.items()}}

    @classmethod
    def from_dict(cls, baseline: Baseline, state: dict[str, Any]) -> WindowAccumulator:
        """A window written by to_dict, on the same baseline (its features and bucket edges)."""
        acc = cls(baseline)
        try:
            if state["baseline"] != fingerprint(baseline):
                raise ValueError("it was counted on another baseline's features or bucket edges")
            for name in ("rows", "records", "invalid_records", "skipped_records"):
                setattr(acc, name, int(state[name]))
            for moment in (state["first_event"], state["last_event"]):
                if moment is not None:
                    acc.note_event(parse_time(moment))
            acc.seen, acc.extra_columns = set(state["seen"]), set(state["extra_columns"])
            for name, feature in acc.features.items():
                feature.load(state["features"][name])
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PartialWindowError(f"not a partial window of this baseline: {error}") from error
        return acc


class PartialWindowError(ValueError):
    """A host's partial window that does not fit the baseline, or is not one."""


def fingerprint(baseline: Baseline) -> str:
    """What a window's counts depend on: the features, their types, bucket edges and known categories."""
    described = [[f.name, f.inferred_type, [float(e) for e in f.edges], sorted(f.categories)]
                 for f in baseline.features]
    return hashlib.sha256(json.dumps(described).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ evaluation


def _robust(distance: float, n: int, m: int) -> float:
    return max(0.0, distance - ROBUST_C_ALPHA * math.sqrt((n + m) / (n * m)))


def _numeric_distance(feature: FeatureBaseline, window: NumericAccumulator) -> float | None:
    """L-infinity distance between the baseline's and the window's CDFs at the baseline's bucket edges."""
    baseline_n = float(feature.bucket_counts.sum())
    if not window.n or not baseline_n or len(feature.edges) < 2:
        return None
    # Evaluated just below e0, then at e1..eK.
    baseline_cdf = np.concatenate(([0.0], np.cumsum(feature.bucket_counts) / baseline_n))
    window_cdf = np.concatenate(([window.below], window.at_or_below)) / window.n
    return float(np.max(np.abs(baseline_cdf - window_cdf)))


def _categorical_distance(feature: FeatureBaseline, window: CategoricalAccumulator) -> float | None:
    """L-infinity distance between category frequencies; each unseen value is a category of its own."""
    if not window.present or not feature.num_present:
        return None
    n, m = feature.num_present, window.present
    keys = set(feature.categories) | set(window.counts)
    return max(abs(feature.categories.get(k, 0) / n - window.counts.get(k, 0) / m) for k in keys)


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def _distance(baseline: Baseline, feature: FeatureBaseline, acc: Any) -> float | None:
    if feature.numeric:
        distance, n, m = _numeric_distance(feature, acc), int(feature.bucket_counts.sum()), acc.n
    else:
        distance, n, m = _categorical_distance(feature, acc), feature.num_present, acc.present
    return _robust(distance, n, m) if distance is not None and baseline.robust else distance


def _drift(baseline: Baseline, feature: FeatureBaseline, acc: Any | None) -> dict[str, Any]:
    """Drift metrics of one feature; distance None when there is nothing to compare (acc None: column absent)."""
    threshold = baseline.numeric_threshold if feature.numeric else baseline.categorical_threshold
    distance = _distance(baseline, feature, acc) if acc is not None else None
    return {
        "distance": distance,
        "threshold": threshold,
        "drifted": bool(distance is not None and baseline.perform_comparison and distance > threshold),
        "method": "linf_robust" if baseline.robust else "linf_simple",
    }


def _violation(name: str, check: str, description: str) -> dict[str, str]:
    return {"feature_name": name, "constraint_check_type": check, "description": description}


def _completeness_violation(feature: FeatureBaseline, acc: Any, rows: int) -> dict[str, str] | None:
    completeness = acc.present / rows
    noise = COMPLETENESS_SIGMAS * math.sqrt(max(0.0, feature.completeness * (1.0 - feature.completeness)) / rows)
    if completeness >= feature.completeness - noise - 1e-12:
        return None
    return _violation(
        feature.name,
        "completeness_check",
        f"Data completeness requirement is not met. Expected: {_pct(feature.completeness)} of data is not null. "
        f"Observed: only {_pct(completeness)} of data is not null.",
    )


def _data_type_violation(baseline: Baseline, feature: FeatureBaseline, acc: Any) -> dict[str, str] | None:
    if not feature.numeric or not acc.present:
        return None
    match = 1.0 - acc.mismatched / acc.present
    if match >= baseline.datatype_threshold - 1e-12:
        return None
    return _violation(
        feature.name,
        "data_type_check",
        f"Data type match requirement is not met. Expected data type: {feature.inferred_type}, Expected match: "
        f"{_pct(baseline.datatype_threshold)}. Observed: Only {_pct(match)} of data is {feature.inferred_type}.",
    )


def _domain_violation(baseline: Baseline, feature: FeatureBaseline, acc: Any) -> dict[str, str] | None:
    if feature.numeric or feature.domain is None or not acc.present:
        return None
    outside = sum(count for value, count in acc.counts.items() if value not in feature.domain) + acc.overflow
    inside = 1.0 - outside / acc.present
    if inside >= baseline.domain_threshold - 1e-12:
        return None
    return _violation(
        feature.name,
        "categorical_values_check",
        f"Domain content requirement is not met. Expected: {_pct(baseline.domain_threshold)} of data in the "
        f"baseline domain. Observed: only {_pct(inside)} of data is in the baseline domain.",
    )


def _feature_violations(baseline: Baseline, feature: FeatureBaseline, acc: Any, rows: int, drift: dict) -> list:
    found = []
    if baseline.evaluate_constraints:
        found += [
            _completeness_violation(feature, acc, rows),
            _data_type_violation(baseline, feature, acc),
            _domain_violation(baseline, feature, acc),
        ]
    if drift["drifted"]:
        found.append(
            _violation(
                feature.name,
                "baseline_drift_check",
                f"Baseline drift distance: {drift['distance']} exceeds threshold: {drift['threshold']}",
            )
        )
    return [violation for violation in found if violation]


def _column_violations(baseline: Baseline, acc: WindowAccumulator) -> list[dict[str, str]]:
    missing = [name for name in baseline.names if name not in acc.seen]
    width, expected = len(acc.seen) + len(acc.extra_columns), len(baseline.features)
    counts = f"Number of columns in current dataset: {width}, Number of columns in baseline constraints: {expected}"
    return [
        _violation(name, "missing_column_check", f"There are missing columns in current dataset. {counts}")
        for name in missing
    ] + [
        _violation(name, "extra_column_check", f"There are extra columns in current dataset. {counts}")
        for name in sorted(acc.extra_columns)
    ]


def parse_time(text: str) -> datetime:
    # fromisoformat only takes "Z" from Python 3.11; the containers run older ones. Naive means UTC.
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # noqa: UP017


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None  # noqa: UP017


def evaluate(
    acc: WindowAccumulator, start: datetime | None = None, end: datetime | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(statistics.json, constraint_violations.json, drift_metrics.json) of an accumulated window."""
    baseline = acc.baseline
    statistics: dict[str, Any] = {"version": 0, "dataset": {"item_count": acc.rows}, "features": []}
    violations: list[dict[str, str]] = []
    drift: dict[str, dict[str, Any]] = {}
    for feature in baseline.features:
        window = acc.features[feature.name]
        present = acc.rows > 0 and feature.name in acc.seen
        drift[feature.name] = _drift(baseline, feature, window if present else None)
        if present:
            kind = "numerical_statistics" if feature.numeric else "string_statistics"
            statistics["features"].append(
                {"name": feature.name, "inferred_type": feature.inferred_type, kind: window.statistics()}
            )
            violations += _feature_violations(baseline, feature, window, acc.rows, drift[feature.name])
    if baseline.evaluate_constraints and acc.rows:
        violations += _column_violations(baseline, acc)
    metrics = {
        "version": 0,
        "rows": acc.rows,
        "records": acc.records,
        "invalid_records": acc.invalid_records,
        "skipped_records": acc.skipped_records,
        "empty": acc.rows == 0,
        "window": {
            "start": _iso(start),
            "end": _iso(end),
            "first_event": _iso(acc.first_event),
            "last_event": _iso(acc.last_event),
        },
        "emit_metrics": baseline.emit_metrics,
        "violation_count": len(violations),
        "features": drift,
    }
    return statistics, {"violations": violations}, metrics


