"""The baseline: statistics.json and constraints.json (Model Monitor's formats) of the training features,
built at training time and read back by the monitor."""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings ship beside this script
    sys.path.insert(0, str(HERE))

from accumulators import NUM_BUCKETS, CategoricalAccumulator, NumericAccumulator  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd
    from prep_stats import Column, Table

INTEGRAL, FRACTIONAL, STRING, UNKNOWN = "Integral", "Fractional", "String", "Unknown"
NUMERIC_TYPES = (INTEGRAL, FRACTIONAL)
MAX_DOMAIN = 100  # string_constraints.domains only "for small cardinality"


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


# ------------------------------------------------------------------------------------------------- baseline


def _quantile_edges(finite: Table) -> np.ndarray:
    """Distinct inverted-CDF quantiles at NUM_BUCKETS + 1 ranks: equal-mass buckets, exact for discrete data."""
    from prep_stats import value_at  # building a baseline reads frames (pandas): see build_baseline

    total = int(finite[1].sum())
    if not total:
        return np.array([])
    ranks = np.ceil(np.linspace(0.0, 1.0, NUM_BUCKETS + 1) * total).astype(np.int64) - 1
    edges = np.unique(value_at(finite, np.clip(ranks, 0, total - 1)))
    return np.repeat(edges, 2) if len(edges) == 1 else edges


def _baseline_feature(column: Column) -> tuple[dict[str, Any], dict[str, Any]]:
    name = column.name
    inferred = STRING if column.text else INTEGRAL if column.integral else FRACTIONAL
    completeness = column.present / column.rows if column.rows else 1.0
    constraint: dict[str, Any] = {"name": name, "inferred_type": inferred, "completeness": completeness}
    if inferred in NUMERIC_TYPES:
        numeric = NumericAccumulator(_quantile_edges(column.finite), integral=inferred == INTEGRAL)
        numeric.add_table(column.finite, column.present, column.rows - column.present)
        constraint["num_constraints"] = {"is_non_negative": bool(numeric.n == 0 or numeric.low >= 0)}
        return {"name": name, "inferred_type": inferred, "numerical_statistics": numeric.statistics()}, constraint
    categorical = CategoricalAccumulator(present=column.present, missing=column.rows - column.present)
    categorical.add_counts(column.categories)
    stats = categorical.statistics()
    if categorical.overflow == 0 and len(categorical.counts) <= MAX_DOMAIN:
        constraint["string_constraints"] = {"domains": sorted(categorical.counts)}
    return {"name": name, "inferred_type": inferred, "string_statistics": stats}, constraint


def baseline_from_columns(columns: list[Column], rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """statistics.json and constraints.json (Model Monitor's formats) from merged statistics of `rows` rows."""
    statistics: dict[str, Any] = {"version": 0, "dataset": {"item_count": rows}, "features": []}
    constraints: dict[str, Any] = {"version": 0, "features": [], "monitoring_config": copy.deepcopy(MONITORING_CONFIG)}
    for column in columns:
        stats, constraint = _baseline_feature(column)
        statistics["features"].append(stats)
        constraints["features"].append(constraint)
    return statistics, constraints


def build_baseline(frame: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any]]:
    """statistics.json and constraints.json (Model Monitor's formats) for a frame of raw feature columns."""
    # prep_stats (and pandas with it) is imported by what builds a baseline, not by this module: the monitor's merge
    # only reads one back, and importing pandas was most of its time.
    from prep_stats import Block, frame_kinds, resolve

    kinds = frame_kinds(frame)
    block = Block.of(frame, kinds)
    columns = [resolve(name, block.columns[name], {kinds[name]}, len(frame)) for name in kinds]
    return baseline_from_columns(columns, len(frame))


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


