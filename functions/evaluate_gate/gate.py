"""The Gate: does the challenger earn registration?

It passes only when the configured metric meets the threshold and, when a champion was scored, beats
the champion: strictly (a tie keeps the champion), and by at least min_improvement when that is set.
Both were scored by Evaluate on the same held-out rows (one evaluation.json), so the comparison is fair
by construction. A missing or non-finite
metric fails the gate. The reasons say why, either way, and warn when the data was too small for
the metrics to be trusted (few test rows, a class the model never trained on or the test never saw):
warnings, not rejections, since the threshold already judges the metric itself."""

from __future__ import annotations

import math
from typing import Any

from selfheal_shared import aws, ledger
from selfheal_shared.config import Metric
from selfheal_shared.errors import EvaluationNotFound, InvalidEvaluation
from selfheal_shared.events import GateRequest, GateResult
from selfheal_shared.s3uri import S3Uri

MAX_EVALUATION_BYTES = 1024 * 1024
# Float noise must not turn "improved by exactly min_improvement" into a rejection.
_TOLERANCE = 1e-12
# Below this many test rows one row moves a rate metric by more than a point: the metrics are noisy.
MIN_TEST_ROWS = 100


def evaluate_gate(request: GateRequest) -> dict[str, Any]:
    """Read evaluation.json, decide, record the decision in the run's ledger item."""
    evaluation = read_evaluation(request.evaluation_uri)
    result = decide(request.metric, evaluation)
    ledger.update_run(request.model, request.run_id, gate={"passed": result.passed, "reasons": result.reasons},
                      metrics=result.metrics, champion_metrics=result.champion_metrics,
                      evaluation_uri=request.evaluation_uri)
    return result.model_dump()


def read_evaluation(uri: str) -> dict[str, Any]:
    return aws.read_json(S3Uri.parse(uri), "evaluation", MAX_EVALUATION_BYTES, EvaluationNotFound, InvalidEvaluation)


def decide(metric: Metric, evaluation: dict[str, Any]) -> GateResult:
    section = evaluation.get("selfheal")
    if not isinstance(section, dict) or not isinstance(section.get("challenger"), dict):
        return GateResult(passed=False, reasons=["evaluation.json has no selfheal.challenger metrics"],
                          metrics={}, champion_metrics=None)
    challenger = _finite_metrics(section["challenger"])
    champion = _finite_metrics(section["champion"]) if isinstance(section.get("champion"), dict) else None
    reasons: list[str] = []
    value = challenger.get(metric.name)
    passed = value is not None and _meets_threshold(metric, value, reasons)
    if value is None:
        reasons.append(f"{metric.name} is missing or not a finite number in the challenger's metrics")
    if passed:
        passed = _beats_champion(metric, value, champion, reasons)
    reasons += small_data_warnings(section)
    return GateResult(passed=passed, reasons=reasons, metrics=challenger, champion_metrics=champion)


def small_data_warnings(section: dict[str, Any]) -> list[str]:
    """From what Evaluate counted: the test rows, and each class's rows in training and in the test."""
    warnings = []
    rows = section.get("test_rows")
    if isinstance(rows, int) and 0 < rows < MIN_TEST_ROWS:
        warnings.append(f"warning: only {rows} test rows: one row moves accuracy by {1 / rows:.3g}, so these "
                        "metrics are noisy (more data, or a larger split.test, steadies them)")
    class_rows = section.get("class_rows")
    for label, counts in (class_rows.items() if isinstance(class_rows, dict) else []):
        if not isinstance(counts, dict):
            continue
        if counts.get("train") == 0:
            warnings.append(f"warning: class {label!r} has no training rows: the model cannot predict it")
        elif counts.get("test") == 0:
            warnings.append(f"warning: class {label!r} has no test rows: the metrics say nothing about it")
    return warnings


def _meets_threshold(metric: Metric, value: float, reasons: list[str]) -> bool:
    better = "greater" if metric.greater_is_better else "lower"
    if _at_least(metric, value, metric.threshold):
        reasons.append(f"{metric.name} {value:.6g} meets the threshold {metric.threshold:.6g} ({better} is better)")
        return True
    reasons.append(f"{metric.name} {value:.6g} does not meet the threshold {metric.threshold:.6g} "
                   f"({better} is better)")
    return False


def _beats_champion(metric: Metric, value: float, champion: dict[str, float | None] | None,
                    reasons: list[str]) -> bool:
    if champion is None:
        reasons.append("no champion to compare with")
        return True
    best = champion.get(metric.name)
    if best is None:
        reasons.append(f"the champion's {metric.name} is missing or not a finite number: cannot compare")
        return False
    improvement = value - best if metric.greater_is_better else best - value
    if improvement <= _TOLERANCE:  # a tie keeps the champion: a retrain must earn its rollout
        reasons.append(f"{metric.name} {value:.6g} is no better than the champion's {best:.6g} on the same test "
                       "rows: the champion keeps serving")
        return False
    if improvement + _TOLERANCE >= metric.min_improvement:
        reasons.append(f"{metric.name} {value:.6g} beats the champion's {best:.6g} by {improvement:.6g} "
                       f"(min_improvement {metric.min_improvement:.6g}), on the same test rows")
        return True
    reasons.append(f"{metric.name} {value:.6g} does not beat the champion's {best:.6g} by min_improvement "
                   f"{metric.min_improvement:.6g} (improvement {improvement:.6g})")
    return False


def _at_least(metric: Metric, value: float, bound: float) -> bool:
    return value >= bound if metric.greater_is_better else value <= bound


def _finite_metrics(raw: dict[str, Any]) -> dict[str, float | None]:
    """Numbers as floats; anything else (NaN, strings, missing) as None, which JSON and DynamoDB hold."""
    return {str(name): float(value) if _is_finite_number(value) else None for name, value in raw.items()}


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
