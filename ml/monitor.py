"""selfheal's drift monitor, in Amazon SageMaker Model Monitor's file formats.

Two uses:
* importable: `build_baseline(frame)` writes the baseline (statistics.json, constraints.json) at training
  time, and `analyze_frame(frame, statistics, constraints)` analyses an in-memory window;
* a SageMaker processing job, `python3 monitor.py [--start-time ISO] [--end-time ISO]`:
    <OPT_ML>/processing/input/baseline/{statistics.json,constraints.json}   the baseline
    <OPT_ML>/processing/input/capture/**/*.jsonl                            endpoint data capture
    <OPT_ML>/processing/output/report/{statistics.json,constraint_violations.json,drift_metrics.json}

Memory stays bounded whatever the window holds: capture files are streamed, parsed a chunk at a time, and only
per-feature accumulators are kept (counts at the baseline's bucket edges, moments, capped category
counters). Runs in SageMaker's framework containers: numpy, pandas (1.x to 3.x) and the standard library.
"""

from __future__ import annotations

import argparse
import base64
import copy
import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_integer_dtype, is_numeric_dtype

OPT_ML = Path(os.environ.get("SELFHEAL_OPT_ML", "/opt/ml"))

INTEGRAL, FRACTIONAL, STRING, UNKNOWN = "Integral", "Fractional", "String", "Unknown"
NUMERIC_TYPES = (INTEGRAL, FRACTIONAL)

# Quantile buckets: the drift distance is evaluated at their edges, so more buckets mean a finer CDF grid
# (a 2% step against the default 0.1 threshold). Model Monitor itself shows 10.
NUM_BUCKETS = 50
KLL_PARAMETERS = {"c": 0.64, "k": 2048}
MAX_CATEGORIES = 1000  # categories tracked per feature, beyond the baseline's: bounds memory
MAX_DOMAIN = 100  # string_constraints.domains only "for small cardinality"
# c(alpha) of the two-sample Kolmogorov-Smirnov bound that linf_robust subtracts (alpha ~ 0.003);
# the value awslabs/deequ (Model Monitor's engine) uses in Distance.selectMetrics.
ROBUST_C_ALPHA = 1.8
# Model Monitor flags any window whose completeness is below the baseline's: with 5% missing values in
# training, half of all ordinary windows. selfheal allows for sampling noise: flagged only when more than
# this many standard errors (of the window's fraction present) below; none at a baseline of 100%.
COMPLETENESS_SIGMAS = 3.0
CHUNK_ROWS = 50_000  # rows analysed at once by analyze_frame
CHUNK_BYTES = 8 << 20  # capture payload characters parsed at once (about 50,000 rows of 20 features)
READ_BLOCK_BYTES = 1 << 20
PARALLEL_MIN_BYTES = 8 << 20  # below this, worker processes cost more than they save
MAX_EXTRA_COLUMNS = 100

# Tokens a CSV numeric field may use for "no value"; string fields treat only the empty field as missing,
# since "NA" or "None" can be genuine categories.
NUMERIC_NA = ["", "nan", "NaN", "NAN", "null", "NULL", "None", "NA", "N/A", "n/a"]
NUMERIC_NA_SET = frozenset(NUMERIC_NA)

MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    # Model Monitor's suggested baselines use 1.0: the fraction of values that must match the type/domain.
    "datatype_check_threshold": 1.0,
    "domain_content_threshold": 1.0,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}


class BaselineError(ValueError):
    """The baseline files are missing, malformed, or ask for something this monitor does not do."""


# ---------------------------------------------------------------------------------------------- accumulators


def _numeric_values(series: pd.Series) -> tuple[np.ndarray, int, int]:
    """(float values, NaN where missing or unparsable; count of missing; count of values that are not numbers)."""
    if is_numeric_dtype(series.dtype) and not is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, int(np.count_nonzero(np.isnan(values))), 0
    null = series.isna().to_numpy()
    try:
        numbers = pd.to_numeric(series, errors="coerce")
    except TypeError:  # pandas < 2 refuses nested JSON values (lists, objects) even when coercing
        numbers = pd.to_numeric(series.map(lambda value: value if np.isscalar(value) else None), errors="coerce")
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    unparsable = np.isnan(values) & ~null
    return values, int(np.count_nonzero(null)), int(np.count_nonzero(unparsable))


@dataclass
class NumericAccumulator:
    """Streaming statistics of a numeric feature: moments, extremes, and counts at the bucket edges."""

    edges: np.ndarray  # baseline bucket edges e0..eK (empty when the baseline has no distribution)
    integral: bool
    present: int = 0
    missing: int = 0
    mismatched: int = 0  # present but not of the inferred type
    n: int = 0  # finite numeric values
    mean: float = 0.0
    m2: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    below: int = 0  # values < e0
    at_or_below: np.ndarray = field(init=False)  # values <= e1..eK

    def __post_init__(self) -> None:
        self.at_or_below = np.zeros(max(len(self.edges) - 1, 0), dtype=np.int64)

    def update(self, series: pd.Series) -> None:
        values, missing, unparsable = _numeric_values(series)
        finite = values[np.isfinite(values)]
        self.missing += missing
        self.present += len(values) - missing
        self.mismatched += unparsable
        if self.integral:
            self.mismatched += int(np.count_nonzero(finite != np.floor(finite)))
        if len(finite):
            self._add_moments(finite)
            self._add_counts(finite)

    def _add_moments(self, x: np.ndarray) -> None:
        # Chan et al.'s pairwise update: exact merging of chunk moments without a sum of squares.
        n, mean = len(x), float(x.mean())
        deviations = x - mean
        m2 = float((deviations * deviations).sum())  # not np.dot: BLAS threads cost 50x more here
        self._merge_moments(n, mean, m2)
        self.low = min(self.low, float(x.min()))
        self.high = max(self.high, float(x.max()))

    def _merge_moments(self, n: int, mean: float, m2: float) -> None:
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def _add_counts(self, x: np.ndarray) -> None:
        # One vectorised comparison pass per edge beats a binary search per value (searchsorted) by 5x.
        if len(self.edges):
            self.below += int(np.count_nonzero(x < self.edges[0]))
            self.at_or_below += [np.count_nonzero(x <= edge) for edge in self.edges[1:]]

    def merge(self, other: NumericAccumulator) -> None:
        self.present += other.present
        self.missing += other.missing
        self.mismatched += other.mismatched
        if other.n:
            self._merge_moments(other.n, other.mean, other.m2)
            self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        self.below += other.below
        self.at_or_below += other.at_or_below

    def buckets(self) -> list[dict[str, float]]:
        """The window's KLL buckets on the baseline's edges, plus any mass outside the baseline's range."""
        if not self.n or not len(self.edges):
            return []
        cumulative = np.concatenate(([self.below], self.at_or_below))
        counts = np.diff(cumulative)
        result = []
        if self.below:
            result.append(_bucket(self.low, self.edges[0], self.below))
        result += [_bucket(self.edges[i], self.edges[i + 1], counts[i]) for i in range(len(counts))]
        above = self.n - int(cumulative[-1])
        if above:
            result.append(_bucket(self.edges[-1], self.high, above))
        return result

    def statistics(self) -> dict[str, Any]:
        buckets = self.buckets()
        return {
            "common": {"num_present": self.present, "num_missing": self.missing},
            "mean": self.mean if self.n else 0.0,
            "sum": self.mean * self.n if self.n else 0.0,
            "std_dev": math.sqrt(self.m2 / self.n) if self.n else 0.0,
            "min": self.low if self.n else 0.0,
            "max": self.high if self.n else 0.0,
            "distribution": {"kll": {"buckets": buckets, "sketch": _sketch(buckets)}},
        }


def _bucket(lower: float, upper: float, count: int) -> dict[str, float]:
    return {"lower_bound": float(lower), "upper_bound": float(upper), "count": int(count)}


def _sketch(buckets: list[dict[str, float]]) -> dict[str, Any]:
    """A compact stand-in for the KLL sketch: quantiles read off the buckets at NUM_BUCKETS + 1 ranks."""
    if not buckets:
        return {"parameters": dict(KLL_PARAMETERS), "data": [[]]}
    edges = np.array([buckets[0]["lower_bound"]] + [b["upper_bound"] for b in buckets])
    cdf = np.concatenate(([0.0], np.cumsum([b["count"] for b in buckets], dtype=np.float64)))
    quantiles = np.interp(np.linspace(0.0, 1.0, NUM_BUCKETS + 1), cdf / cdf[-1], edges)
    return {"parameters": dict(KLL_PARAMETERS), "data": [[float(q) for q in quantiles]]}


@dataclass
class CategoricalAccumulator:
    """Streaming category counts; at most `capacity` distinct values are tracked (the rest: `overflow`)."""

    known: frozenset[str] = frozenset()  # baseline categories: always tracked
    capacity: int = MAX_CATEGORIES
    present: int = 0
    missing: int = 0
    overflow: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def update(self, series: pd.Series) -> None:
        values = series.dropna()
        self.missing += len(series) - len(values)
        self.present += len(values)
        if not len(values):
            return
        if pd.api.types.infer_dtype(values, skipna=False) != "string":  # JSON numbers, booleans
            values = values.astype(str)
        self._add(values.value_counts().items())

    def _add(self, tallies: Iterable[tuple[str, int]]) -> None:
        counts, known = self.counts, self.known
        for value, count in tallies:
            count = int(count)
            if value in counts:
                counts[value] += count
            elif value in known or len(counts) < self.capacity + len(known):
                counts[value] = count
            else:
                self.overflow += count

    def merge(self, other: CategoricalAccumulator) -> None:
        self.present += other.present
        self.missing += other.missing
        self.overflow += other.overflow
        self._add(sorted(other.counts.items(), key=lambda item: -item[1]))

    def statistics(self) -> dict[str, Any]:
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return {
            "common": {"num_present": self.present, "num_missing": self.missing},
            "distinct_count": len(ranked),
            "distribution": {"categorical": {"buckets": [{"value": value, "count": count} for value, count in ranked]}},
        }


# ------------------------------------------------------------------------------------------------- baseline


def _inferred_type(series: pd.Series) -> str:
    if is_bool_dtype(series.dtype) or not is_numeric_dtype(series.dtype):
        return STRING
    if is_integer_dtype(series.dtype):
        return INTEGRAL
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = values[np.isfinite(values)]
    # An integer column with gaps arrives as floats: still Integral, as it was in the source file.
    return INTEGRAL if len(values) and np.array_equal(values, np.floor(values)) else FRACTIONAL


def _quantile_edges(series: pd.Series) -> np.ndarray:
    """Distinct inverted-CDF quantiles at NUM_BUCKETS + 1 ranks: equal-mass buckets, exact for discrete data."""
    values, _, _ = _numeric_values(series)
    values = np.sort(values[np.isfinite(values)])
    if not len(values):
        return np.array([])
    ranks = np.ceil(np.linspace(0.0, 1.0, NUM_BUCKETS + 1) * len(values)).astype(np.int64) - 1
    edges = np.unique(values[np.clip(ranks, 0, len(values) - 1)])
    return np.repeat(edges, 2) if len(edges) == 1 else edges


def _baseline_feature(name: str, series: pd.Series) -> tuple[dict[str, Any], dict[str, Any]]:
    inferred = _inferred_type(series)
    completeness = float(series.notna().mean()) if len(series) else 1.0
    constraint: dict[str, Any] = {"name": name, "inferred_type": inferred, "completeness": completeness}
    if inferred in NUMERIC_TYPES:
        numeric = NumericAccumulator(_quantile_edges(series), integral=inferred == INTEGRAL)
        numeric.update(series)
        constraint["num_constraints"] = {"is_non_negative": bool(numeric.n == 0 or numeric.low >= 0)}
        return {"name": name, "inferred_type": inferred, "numerical_statistics": numeric.statistics()}, constraint
    categorical = CategoricalAccumulator()
    categorical.update(series)
    stats = categorical.statistics()
    if categorical.overflow == 0 and len(categorical.counts) <= MAX_DOMAIN:
        constraint["string_constraints"] = {"domains": sorted(categorical.counts)}
    return {"name": name, "inferred_type": inferred, "string_statistics": stats}, constraint


def build_baseline(frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    """statistics.json and constraints.json (Model Monitor's formats) for a frame of raw feature columns."""
    statistics: dict[str, Any] = {"version": 0, "dataset": {"item_count": len(frame)}, "features": []}
    constraints: dict[str, Any] = {"version": 0, "features": [], "monitoring_config": copy.deepcopy(MONITORING_CONFIG)}
    for name in frame.columns:
        stats, constraint = _baseline_feature(str(name), frame[name])
        statistics["features"].append(stats)
        constraints["features"].append(constraint)
    return statistics, constraints


# ----------------------------------------------------------------------------------- baseline, read back


@dataclass
class FeatureBaseline:
    name: str
    inferred_type: str
    completeness: float
    domain: frozenset[str] | None
    edges: np.ndarray  # numeric: bucket edges; empty when unknown
    bucket_counts: np.ndarray  # numeric: baseline counts per bucket
    categories: dict[str, int]  # categorical: baseline counts per value
    num_present: int

    @property
    def numeric(self) -> bool:
        return self.inferred_type in NUMERIC_TYPES

    def accumulator(self) -> NumericAccumulator | CategoricalAccumulator:
        if self.numeric:
            return NumericAccumulator(self.edges, integral=self.inferred_type == INTEGRAL)
        return CategoricalAccumulator(known=frozenset(self.categories))


@dataclass
class Baseline:
    features: list[FeatureBaseline]
    evaluate_constraints: bool
    emit_metrics: bool
    datatype_threshold: float
    domain_threshold: float
    perform_comparison: bool
    numeric_threshold: float
    categorical_threshold: float
    robust: bool

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]


def _enabled(value: Any) -> bool:
    return str(value).lower() != "disabled"


def _feature_baseline(constraint: dict[str, Any], stats: dict[str, Any]) -> FeatureBaseline:
    inferred = constraint.get("inferred_type") or stats.get("inferred_type") or UNKNOWN
    domains = (constraint.get("string_constraints") or {}).get("domains")
    numerical = stats.get("numerical_statistics") or {}
    kll_buckets = ((numerical.get("distribution") or {}).get("kll") or {}).get("buckets") or []
    string = stats.get("string_statistics") or {}
    categorical = ((string.get("distribution") or {}).get("categorical") or {}).get("buckets") or []
    common = (numerical or string).get("common") or {}
    edges = [b["lower_bound"] for b in kll_buckets[:1]] + [b["upper_bound"] for b in kll_buckets]
    return FeatureBaseline(
        name=constraint["name"],
        inferred_type=inferred,
        completeness=float(constraint.get("completeness", 0.0)),
        domain=frozenset(str(d) for d in domains) if domains is not None else None,
        edges=np.array(edges, dtype=np.float64) if inferred in NUMERIC_TYPES else np.array([]),
        bucket_counts=np.array([b["count"] for b in kll_buckets], dtype=np.float64),
        categories={str(b["value"]): int(b["count"]) for b in categorical},
        num_present=int(common.get("num_present", 0)),
    )


def read_baseline(statistics: dict[str, Any], constraints: dict[str, Any]) -> Baseline:
    """The baseline files, parsed; the features in constraints.json's order (a CSV request's column order)."""
    try:
        stats_by_name = {f["name"]: f for f in statistics.get("features", [])}
        features = [_feature_baseline(c, stats_by_name.get(c["name"], {})) for c in constraints["features"]]
    except (KeyError, TypeError, AttributeError) as error:
        raise BaselineError(f"malformed baseline: {error!r}") from error
    config = constraints.get("monitoring_config") or {}
    distribution = config.get("distribution_constraints") or {}
    method = str(distribution.get("comparison_method", "Robust")).lower()
    if method not in ("robust", "simple", "linf_robust", "linf_simple"):
        raise BaselineError(f"unsupported comparison_method {method!r}: use Robust or Simple")
    categorical_method = str(distribution.get("categorical_drift_method", "LInfinity"))
    if categorical_method.lower() != "linfinity":
        raise BaselineError(f"unsupported categorical_drift_method {categorical_method!r}: use LInfinity")
    numeric_threshold = float(distribution.get("comparison_threshold", 0.1))
    return Baseline(
        features=features,
        evaluate_constraints=_enabled(config.get("evaluate_constraints", "Enabled")),
        emit_metrics=_enabled(config.get("emit_metrics", "Enabled")),
        datatype_threshold=float(config.get("datatype_check_threshold", 1.0)),
        domain_threshold=float(config.get("domain_content_threshold", 1.0)),
        perform_comparison=_enabled(distribution.get("perform_comparison", "Enabled")),
        numeric_threshold=numeric_threshold,
        categorical_threshold=float(distribution.get("categorical_comparison_threshold", numeric_threshold)),
        robust=method in ("robust", "linf_robust"),
    )


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


def analyze_frame(
    frame: pd.DataFrame, statistics: dict[str, Any], constraints: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Analyse an in-memory window (columns named as the baseline's features) against the baseline."""
    acc = WindowAccumulator(read_baseline(statistics, constraints))
    for begin in range(0, len(frame), CHUNK_ROWS):
        acc.update(frame.iloc[begin : begin + CHUNK_ROWS])
    return evaluate(acc)


# ------------------------------------------------------------------------------------------- data capture

_RAW_DECODE = json.JSONDecoder().raw_decode
_SCAN_STRING = json.decoder.scanstring  # type: ignore[attr-defined]  # the C string scanner json uses
_INPUT_KEY, _DATA_KEY, _TIME_KEY = '"endpointInput"', '"data"', '"inferenceTime"'
MAX_LAYOUTS = 64
CSV, JSON, JSON_LINES = "csv", "json", "jsonlines"


class _RecordReader:
    """Reads (data, content type, encoding, inferenceTime) from capture lines: the job's hot path.

    Decoding whole lines costs more than the rest of the analysis. So the reader decodes only the
    endpointInput's data string, and reads the content type and encoding beside it once per distinct
    layout of that object (its text around the data), which is the same on every line an endpoint writes.
    A quoted key cannot occur inside a JSON string (its quotes would be escaped), so searching for keys
    finds keys. Any line the fast path does not fit is decoded in full.
    """

    def __init__(self) -> None:
        self.layouts: dict[tuple[str, str], tuple[Any, Any]] = {}

    def read(self, line: str) -> tuple[str, Any, Any, str | None]:
        try:
            data, content_type, encoding = self._input(line)
        except ValueError:
            data, content_type, encoding = _decoded_input(line)
        at = line.find(_TIME_KEY)
        if at < 0:
            return data, content_type, encoding, None
        quote = line.index('"', line.index(":", at + len(_TIME_KEY)) + 1)
        return data, content_type, encoding, line[quote + 1 : line.index('"', quote + 1)]  # ISO: no escapes

    def _input(self, line: str) -> tuple[str, Any, Any]:
        brace = line.index("{", line.index(_INPUT_KEY) + len(_INPUT_KEY))
        key = line.index(_DATA_KEY, brace)
        at = line.index(":", key + len(_DATA_KEY)) + 1
        while line[at] in " \t":
            at += 1
        if line[at] != '"':
            raise ValueError("data is not a string")
        data, after = _SCAN_STRING(line, at + 1)
        layout = (line[brace:key], line[after : line.index("}", after) + 1])
        fields = self.layouts.get(layout)
        if fields is None:
            if "}" in layout[0]:  # the "data" found is not endpointInput's
                raise ValueError("endpointInput has no data")
            others = json.loads(layout[0] + '"data":""' + layout[1])
            fields = others.get("observedContentType"), others.get("encoding")
            if len(self.layouts) < MAX_LAYOUTS:
                self.layouts[layout] = fields
        return data, fields[0], fields[1]


def _decoded_input(line: str) -> tuple[str, Any, Any]:
    at = line.index(":", line.index(_INPUT_KEY) + len(_INPUT_KEY)) + 1
    while line[at] in " \t":
        at += 1
    endpoint_input = _RAW_DECODE(line, at)[0]
    data = endpoint_input["data"]
    if not isinstance(data, str):
        raise ValueError("data is not a string")
    return data, endpoint_input.get("observedContentType"), endpoint_input.get("encoding")


def _parse_time(text: str) -> datetime:
    # fromisoformat only takes "Z" from Python 3.11; the containers run older ones. Naive means UTC.
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # noqa: UP017


def _json_rows(document: Any) -> list[list[Any] | dict[str, Any]]:
    """Rows of a JSON request: {"instances": [...]}, a list of rows, or one row (a list or an object)."""
    if isinstance(document, dict) and "instances" in document:
        document = document["instances"]
    if isinstance(document, dict) or (
        isinstance(document, list) and document and not isinstance(document[0], (list, dict))
    ):
        document = [document]
    if not isinstance(document, list):
        raise ValueError(f"unsupported JSON payload: {type(document).__name__}")
    rows = []
    for row in document:
        if isinstance(row, dict) and list(row) == ["features"]:  # SageMaker's {"features": [...]} instance
            row = row["features"]
        if not isinstance(row, (list, dict)):
            raise ValueError(f"unsupported JSON row: {type(row).__name__}")
        rows.append(row)
    return rows


def _positional(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Columns named by position in the baseline's order; columns past it as Spark names them (_c<i>)."""
    frame.columns = [names[i] if i < len(names) else f"_c{i}" for i in range(frame.shape[1])]
    return frame


def _csv_width(raw: bytes) -> int:
    """The most fields on any line, counting commas with numpy (valid when no field is quoted)."""
    text = np.frombuffer(raw, dtype=np.uint8)
    line_ends = np.append(np.flatnonzero(text == ord("\n")), len(text))
    commas = np.flatnonzero(text == ord(","))
    return int(np.diff(np.searchsorted(commas, line_ends), prepend=0).max()) + 1


def _quoted_csv_rows(text: str, numeric: list[bool]) -> list[list[Any]]:
    """Rows of one CSV payload with quoted fields; strict, so a malformed payload is an invalid record."""
    rows = [row for row in csv.reader(io.StringIO(text), strict=True) if row]
    return [
        [
            None if value in (NUMERIC_NA_SET if i < len(numeric) and numeric[i] else ("",)) else value
            for i, value in enumerate(row)
        ]
        for row in rows
    ]


def _csv_frame(text: str, baseline: Baseline) -> pd.DataFrame:
    """One read_csv call for a chunk of CSV payloads without quotes (no header, in the baseline's order)."""
    raw = text.encode("utf-8")
    width = _csv_width(raw)
    numeric = [i < len(baseline.features) and baseline.features[i].numeric for i in range(width)]
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            header=None,
            names=list(range(width)),
            keep_default_na=False,
            dtype={i: str for i in range(width) if not numeric[i]},
            na_values={i: NUMERIC_NA if numeric[i] else [""] for i in range(width)},
        )
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    return _positional(frame, baseline.names)


def _declared_kind(content_type: Any, encoding: Any) -> tuple[str | None, bool]:
    """(CSV, JSON, JSON_LINES, or None when the content type does not say; whether base64-encoded)."""
    content_type = str(content_type or "").lower()
    base64_encoded = str(encoding or "").upper() == "BASE64"
    for kind in (JSON_LINES, JSON, CSV):
        if kind in content_type:
            return kind, base64_encoded
    return None, base64_encoded


class _Batch:
    """Payloads of capture records waiting to be parsed together: one read_csv call per chunk."""

    def __init__(self, baseline: Baseline) -> None:
        self.baseline = baseline
        self.csv: list[str] = []
        self.list_rows: list[list[Any]] = []
        self.dict_rows: list[dict[str, Any]] = []
        self.size = 0  # payload characters held: the flush trigger, which bounds memory
        self.numeric = [feature.numeric for feature in baseline.features]
        self._kinds: dict[tuple[Any, Any], tuple[str | None, bool]] = {}

    def add(self, data: str, content_type: Any, encoding: Any) -> None:
        key = (content_type, encoding)
        declared = self._kinds.get(key)
        if declared is None:
            declared = self._kinds[key] = _declared_kind(content_type, encoding)
        kind, base64_encoded = declared
        if base64_encoded:
            data = base64.b64decode(data, validate=True).decode("utf-8")
        if kind is None:  # no content type: sniff
            kind = JSON if data.lstrip()[:1] in ("[", "{") else CSV
        if kind == CSV and '"' in data:  # rare: parsed alone, so that a stray quote spoils only its record
            self.list_rows += _quoted_csv_rows(data, self.numeric)
        elif kind == CSV:
            self.csv.append(data)
        else:
            self._add_json(data, jsonlines=kind == JSON_LINES)
        self.size += len(data)

    def _add_json(self, payload: str, jsonlines: bool) -> None:
        lines = [line for line in payload.splitlines() if line.strip()] if jsonlines else [payload]
        rows = [row for line in lines for row in _json_rows(json.loads(line))]
        self.list_rows += [row for row in rows if isinstance(row, list)]
        self.dict_rows += [row for row in rows if isinstance(row, dict)]

    def frames(self) -> Iterator[pd.DataFrame]:
        if self.csv:
            yield _csv_frame("\n".join(self.csv), self.baseline)
        if self.list_rows:
            width = max(len(row) for row in self.list_rows)
            padded = [row + [None] * (width - len(row)) for row in self.list_rows]
            yield _positional(pd.DataFrame(padded), self.baseline.names)
        if self.dict_rows:
            yield pd.DataFrame(self.dict_rows)


def _owned_blocks(path: str, start: int, end: int) -> Iterator[list[str]]:
    """Blocks of the lines that begin in [start, end): a file split in ranges has each line read once."""
    with open(path, "rb") as handle:
        if start:
            handle.seek(start - 1)
            handle.readline()  # the line straddling `start` belongs to the range before
        position = handle.tell()
        while position < end:
            block = handle.read(min(READ_BLOCK_BYTES, end - position))
            if not block:
                return
            if not block.endswith(b"\n"):
                block += handle.readline()  # finish the last line, which begins before `end`
            position += len(block)
            yield block.decode("utf-8", errors="replace").split("\n")  # a corrupt byte spoils one record


@dataclass
class ScanTask:
    pieces: list[tuple[str, int, int]]  # (path, first byte, end byte)
    baseline: Baseline
    start: datetime | None
    end: datetime | None

    def outside(self, moment: datetime | None) -> bool:
        if moment is None:
            return self.start is not None or self.end is not None
        return (self.start is not None and moment < self.start) or (self.end is not None and moment >= self.end)


def _scan(task: ScanTask) -> WindowAccumulator:
    """Stream capture records into a fresh accumulator, parsing payloads a chunk (CHUNK_BYTES) at a time.

    The per-record loop is the job's hot path: it only slices out the payload and defers all parsing.
    """
    acc, batch, reader = WindowAccumulator(task.baseline), _Batch(task.baseline), _RecordReader()
    last_stamp: Any = ""
    outside = task.outside(None)
    for path, first, end in task.pieces:
        for lines in _owned_blocks(path, first, end):
            for line in lines:
                if not line or line.isspace():
                    continue
                try:
                    data, content_type, encoding, stamp = reader.read(line)
                    if stamp != last_stamp:  # consecutive records mostly share a timestamp: parse it once
                        moment = _parse_time(stamp) if stamp else None
                        last_stamp, outside = stamp, task.outside(moment)
                        if not outside and moment is not None:
                            acc.note_event(moment)
                    if outside:
                        acc.skipped_records += 1
                        continue
                    batch.add(data, content_type, encoding)
                except (ValueError, KeyError, IndexError, TypeError, AttributeError, csv.Error):
                    acc.invalid_records += 1
                    continue
                acc.records += 1
                if batch.size >= CHUNK_BYTES:
                    _flush(acc, batch)
                    batch = _Batch(task.baseline)
    _flush(acc, batch)
    return acc


def _flush(acc: WindowAccumulator, batch: _Batch) -> None:
    for frame in batch.frames():
        acc.update(frame)


def _plan(paths: list[Path], workers: int) -> list[list[tuple[str, int, int]]]:
    """Split the capture files into about 4 byte ranges per worker, small files grouped together."""
    sizes = [(str(path), path.stat().st_size) for path in paths]
    total = sum(size for _, size in sizes)
    if workers <= 1 or total < PARALLEL_MIN_BYTES:
        return [[(path, 0, size) for path, size in sizes]]
    target = math.ceil(total / (workers * 4))
    tasks: list[list[tuple[str, int, int]]] = [[]]
    filled = 0
    for path, size in sizes:
        for begin in range(0, size, target):
            tasks[-1].append((path, begin, min(size, begin + target)))
            filled += min(size, begin + target) - begin
            if filled >= target:
                tasks.append([])
                filled = 0
    return [task for task in tasks if task] or [[]]


def analyze_capture(
    paths: list[Path],
    statistics: dict[str, Any],
    constraints: dict[str, Any],
    start: datetime | None = None,
    end: datetime | None = None,
    workers: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Analyse data capture files (records with inferenceTime in [start, end)) against the baseline."""
    baseline = read_baseline(statistics, constraints)
    # vCPUs are mostly hyperthread pairs: on a 2-vCPU machine, two workers ran no faster than one.
    workers = workers or max(1, (os.cpu_count() or 2) // 2)
    tasks = [ScanTask(pieces, baseline, start, end) for pieces in _plan(paths, workers)]
    if len(tasks) == 1:
        return evaluate(_scan(tasks[0]), start, end)
    acc = WindowAccumulator(baseline)
    with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
        for part in pool.map(_scan, tasks):
            acc.merge(part)
    return evaluate(acc, start, end)


# ------------------------------------------------------------------------------------------------------ job


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BaselineError(f"cannot read the baseline file {path}: {error}") from error


def run_job(
    opt_ml: Path, start: datetime | None = None, end: datetime | None = None, workers: int | None = None
) -> dict[str, Any]:
    """The processing job under SageMaker's container layout; returns drift_metrics.json's content."""
    processing = opt_ml / "processing"
    baseline = [
        _read_json(processing / "input" / "baseline" / name) for name in ("statistics.json", "constraints.json")
    ]
    capture = processing / "input" / "capture"
    paths = sorted(capture.rglob("*.jsonl")) if capture.is_dir() else []
    statistics, violations, metrics = analyze_capture(paths, *baseline, start=start, end=end, workers=workers)
    report = processing / "output" / "report"
    report.mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("statistics.json", statistics),
        ("constraint_violations.json", violations),
        ("drift_metrics.json", metrics),
    ):
        (report / name).write_text(json.dumps(document, indent=2))
    return metrics


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="selfheal's drift monitor (a SageMaker processing job)")
    parser.add_argument("--start-time", type=_parse_time, help="analyse records with inferenceTime >= this (ISO)")
    parser.add_argument("--end-time", type=_parse_time, help="analyse records with inferenceTime < this (ISO)")
    parser.add_argument("--workers", type=int, help="processes reading capture files (default: one per 2 vCPUs)")
    arguments = parser.parse_args(argv)
    if arguments.start_time and arguments.end_time and arguments.start_time >= arguments.end_time:
        parser.error("--start-time must be before --end-time")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    metrics = run_job(OPT_ML, arguments.start_time, arguments.end_time, arguments.workers)
    drifted = [name for name, feature in metrics["features"].items() if feature["drifted"]]
    print(
        f"analysed {metrics['rows']} rows from {metrics['records']} capture records "
        f"({metrics['invalid_records']} invalid, {metrics['skipped_records']} outside the window): "
        f"{metrics['violation_count']} violations; drifted: {', '.join(drifted) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
