"""The judgement of one monitoring execution: labels decide, drift alone waits for them, estimates only warn."""

from __future__ import annotations

import pytest
from healing import Findings, Quality, judge

AUC = {"metric": "auc", "threshold": 0.75, "greater_is_better": True, "min_labels": 100}
DRIFT = "2 violation(s); 2 feature(s) by the counted checks (plan, usage_gb)"


def quality(**fields) -> Quality:
    return Quality(**(AUC | fields))


def test_realized_quality_below_the_threshold_retrains_on_the_labelled_traffic():
    judgement = judge(Findings(quality=quality(matched=400, realized=0.61)), "retrain")
    assert (judgement.action, judgement.trigger, judgement.pending) == ("retrain", "quality", "clear")
    assert "realized auc 0.61 below the threshold 0.75 on 400 labelled predictions" in judgement.reason


def test_realized_quality_holding_means_nothing_to_do_even_with_drift():
    findings = Findings(drift=DRIFT, enough_drift=True, quality=quality(matched=400, realized=0.86))
    judgement = judge(findings, "retrain")
    assert judgement.action == "none"
    assert judgement.reason.startswith("quality held: realized auc 0.86 meets the threshold")
    assert DRIFT in judgement.reason


def test_quality_holding_on_older_labels_while_drifted_predictions_await_theirs_waits_for_them():
    # Given drift, and a realized metric from labelled traffic before it, while the drifted predictions
    # are still within the label delay
    findings = Findings(drift=DRIFT, enough_drift=True, quality=quality(matched=250, pending=1000, realized=0.87))
    judgement = judge(findings, "retrain")
    # Then the metric does not clear the drift: it waits for the newer labels, recording a pending retrain
    assert (judgement.action, judgement.pending) == ("wait_for_labels", "set")
    assert "1000 newer predictions await their labels" in judgement.reason
    # and a few pending predictions (fewer than min_labels) do not hold back the verdict of the many labelled
    few = Findings(drift=DRIFT, enough_drift=True, quality=quality(matched=400, pending=20, realized=0.87))
    assert judge(few, "retrain").action == "none"


def test_labels_arriving_for_a_pending_retrain_that_hold_clear_it():
    judgement = judge(Findings(quality=quality(matched=150, realized=0.8), pending=True), "retrain")
    assert (judgement.action, judgement.pending) == ("none", "clear")
    assert "quality held" in judgement.reason and "pending retrain is cleared" in judgement.reason


def test_labels_arriving_for_a_pending_retrain_that_confirm_the_drop_retrain():
    judgement = judge(Findings(quality=quality(matched=150, realized=0.6), pending=True), "retrain")
    assert (judgement.action, judgement.trigger) == ("retrain", "quality")


def test_drift_without_new_labelled_data_waits_for_labels_and_records_a_pending_retrain():
    findings = Findings(drift=DRIFT, enough_drift=True, quality=quality(matched=12, realized=0.5, estimated=0.88))
    judgement = judge(findings, "retrain")
    assert (judgement.action, judgement.trigger, judgement.pending) == ("wait_for_labels", None, "set")
    assert "no labelled data newer than the champion's" in judgement.reason
    assert "12 labelled predictions so far, 100 needed" in judgement.reason


def test_too_few_labels_never_decide_even_when_they_look_bad():
    judgement = judge(Findings(quality=quality(matched=99, realized=0.1)), "retrain")
    assert judgement.action == "none"


def test_drift_with_labelled_uploads_the_champion_has_not_seen_retrains_on_drift():
    findings = Findings(drift=DRIFT, enough_drift=True, new_labelled_rows=600, quality=quality())
    judgement = judge(findings, "retrain")
    assert (judgement.action, judgement.trigger) == ("retrain", "drift")
    assert "600 labelled rows the champion has not seen" in judgement.reason


def test_an_estimate_below_the_threshold_alerts_and_keeps_waiting_for_labels():
    judgement = judge(Findings(quality=quality(matched=3, estimated=0.7)), "retrain")
    assert (judgement.action, judgement.pending) == ("alert", "set")
    assert judgement.reason.startswith("estimated auc 0.7 below the threshold 0.75")
    assert "waiting for labels to confirm" in judgement.reason


def test_drift_with_an_estimate_below_the_threshold_alerts_and_waits():
    findings = Findings(drift=DRIFT, enough_drift=True, quality=quality(estimated=0.7))
    judgement = judge(findings, "retrain")
    assert (judgement.action, judgement.pending) == ("alert", "set")


@pytest.mark.parametrize("policy", ["alert", "none"])
def test_a_policy_that_never_retrains_turns_the_retrain_into_its_action(policy):
    judgement = judge(Findings(quality=quality(matched=400, realized=0.5)), policy)
    assert judgement.action == policy and judgement.trigger is None
    assert f"retrain.on_violation is {policy}" in judgement.reason


def test_a_lower_is_better_metric_is_below_par_above_its_threshold():
    rmse = Quality("rmse", 10.0, False, 50, matched=80, realized=12.5)
    judgement = judge(Findings(quality=rmse), "retrain")
    assert judgement.action == "retrain"
    assert "realized rmse 12.5 above the threshold 10" in judgement.reason


def test_drift_on_fewer_features_than_configured_is_noted_not_acted_on():
    few = "1 violation(s); 1 feature(s) by the counted checks (plan), fewer than min_drifted_features 2"
    judgement = judge(Findings(drift=few, enough_drift=False, quality=quality(estimated=0.9)), "retrain")
    assert judgement.action == "none" and judgement.reason.startswith(few)


def test_nothing_found_is_nothing_to_do():
    judgement = judge(Findings(drift="no violations in 300 rows", quality=quality(estimated=0.91)), "retrain")
    assert judgement.action == "none"
    assert judgement.reason.startswith("no violations in 300 rows; estimated auc 0.91 meets the threshold")
