"""The judgement: what one monitoring execution's findings call for, before any guard rail.

Drift says the world moved; only labels say whether the model got worse, and only labelled data newer
than the champion's can make a better one. So:
- realized quality (at least monitor.min_labels labelled predictions) decides first: below the
  threshold, retrain on the newest labelled traffic (trigger "quality"); holding, nothing is done,
  whatever the drift, and a pending retrain is cleared ("quality held"), unless the drift comes with
  at least min_labels newer predictions still awaiting their labels: the realized metric then speaks
  for the traffic before the drift, so it waits for those labels;
- without enough labels, drift with labelled uploads the champion never saw may retrain (trigger
  "drift"); drift without them waits for labels (a pending retrain is recorded): a retrain on the
  data the champion was trained on would learn nothing new;
- an estimated metric below the threshold (CBPE, from the model's own scores) raises an alert and
  keeps waiting for labels: an estimate may warn, only labels may retrain.
retrain.on_violation "alert" or "none" turns any retrain into that action. The guard rails (cooldown,
daily cap, one run in flight) come after, in drift_policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["retrain", "alert", "none", "wait_for_labels"]
PendingChange = Literal["set", "clear", "keep"]


@dataclass(frozen=True)
class Quality:
    """The model-quality findings of one execution, on the configured metric."""

    metric: str
    threshold: float
    greater_is_better: bool
    min_labels: int
    matched: int = 0  # labelled predictions in the window
    pending: int = 0  # predictions in the window whose labels may still arrive (within the label delay)
    realized: float | None = None
    estimated: float | None = None

    def below(self, value: float | None) -> bool:
        """Worse than the threshold (below it, or above it for a lower-is-better metric)."""
        if value is None:
            return False
        return value < self.threshold if self.greater_is_better else value > self.threshold

    @property
    def confirmed(self) -> bool:
        """Enough labels for the realized metric to decide."""
        return self.realized is not None and self.matched >= self.min_labels

    def describe(self, value: float | None, kind: str) -> str:
        worse = "below" if self.greater_is_better else "above"
        relation = worse if self.below(value) else "meets"
        rows = f" on {self.matched} labelled predictions" if kind == "realized" else ""
        return f"{kind} {self.metric} {value:.4g} {relation} the threshold {self.threshold:.4g}{rows}"


@dataclass(frozen=True)
class Findings:
    drift: str = ""  # what the drift analysis found, in words ("" when there was none this time)
    enough_drift: bool = False  # violations on at least monitor.min_drifted_features features
    quality: Quality | None = None
    new_labelled_rows: int = 0  # uploaded rows the champion was not trained on
    pending: bool = False  # a retrain is waiting for labels


@dataclass(frozen=True)
class Judgement:
    action: Action
    reason: str
    trigger: Literal["quality", "drift"] | None = None  # set when action is retrain
    pending: PendingChange = "keep"


def judge(findings: Findings, on_violation: str) -> Judgement:
    quality = findings.quality
    drift = f"; {findings.drift}" if findings.drift else ""
    if quality is not None and quality.confirmed:
        realized = quality.describe(quality.realized, "realized")
        if quality.below(quality.realized):
            return _retrain(on_violation, "quality", f"{realized}{drift}; retraining on the labelled traffic")
        if findings.enough_drift and quality.pending >= quality.min_labels:
            return Judgement("wait_for_labels", f"{realized}, but {findings.drift}, and {quality.pending} newer "
                                                "predictions await their labels: waiting for them", pending="set")
        if findings.pending:
            return Judgement("none", f"quality held: {realized}{drift}; the pending retrain is cleared",
                             pending="clear")
        return Judgement("none", f"quality held: {realized}{drift}")
    waiting = _labels_words(quality)
    if findings.enough_drift and findings.new_labelled_rows:
        return _retrain(on_violation, "drift", f"{findings.drift}; {findings.new_labelled_rows} labelled rows the "
                                               f"champion has not seen{waiting}")
    estimate = (quality.describe(quality.estimated, "estimated")
                if quality is not None and quality.estimated is not None else "")
    estimated_low = quality is not None and quality.below(quality.estimated)
    if findings.enough_drift:
        reason = (f"{findings.drift}; no labelled data newer than the champion's: a retrain now would learn "
                  f"nothing new; waiting for labels{waiting}")
        if estimated_low:
            return Judgement("alert", f"{estimate}; {reason}", pending="set")
        return Judgement("wait_for_labels", reason, pending="set")
    if estimated_low:
        return Judgement("alert", f"{estimate}{drift}; waiting for labels to confirm{waiting}", pending="set")
    return Judgement("none", "; ".join(part for part in (findings.drift, estimate) if part) + waiting
                     or "nothing to judge")


def _retrain(on_violation: str, trigger: Literal["quality", "drift"], reason: str) -> Judgement:
    if on_violation == "alert":
        return Judgement("alert", f"{reason}; retrain.on_violation is alert")
    if on_violation == "none":
        return Judgement("none", f"{reason}; retrain.on_violation is none")
    return Judgement("retrain", reason, trigger=trigger, pending="clear")


def _labels_words(quality: Quality | None) -> str:
    if quality is None:
        return ""
    return f" ({quality.matched} labelled predictions so far, {quality.min_labels} needed)"
