"""ViolationFunction: every monitoring outcome decided by the model's policy, guard rails included, and recorded."""

from datetime import UTC, datetime, timedelta

import pytest
from selfheal_bench.fixtures.aws import BUCKET, CHURN, churn_csv, emitted_metrics, event_files, load_event
from selfheal_shared import ledger

MODEL = "churn"
REPORT = "monitoring/churn/monitor-churn-0123456789ab/report"
DRIFT = [
    {"feature_name": "monthly_charges", "constraint_check_type": "baseline_drift_check",
     "description": "Baseline drift distance: 0.41 exceeds threshold: 0.1"},
    {"feature_name": "plan", "constraint_check_type": "baseline_drift_check",
     "description": "Baseline drift distance: 0.3 exceeds threshold: 0.1"},
]
METRICS = {"version": 0, "rows": 300, "records": 300, "empty": False, "emit_metrics": True, "violation_count": 2,
           "features": {"monthly_charges": {"distance": 0.41, "threshold": 0.1, "drifted": True},
                        "plan": {"distance": 0.3, "threshold": 0.1, "drifted": True},
                        "tenure_months": {"distance": 0.02, "threshold": 0.1, "drifted": False},
                        "region": {"distance": None, "threshold": 0.1, "drifted": False}}}


@pytest.fixture
def decide(load_handler, serving_cloud, lambda_context):
    """decide(event file, config overrides) with a dataset to retrain on."""
    handler = load_handler("violation").lambda_handler
    key = f"datasets/{MODEL}/20250101T000000000000Z/shifted.csv"
    serving_cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=churn_csv(60))
    ledger.record_dataset(MODEL, key="incoming/churn/shifted.csv", version_id="v", rows=60, columns=4, bytes=100,
                          format="csv", s3_uri=f"s3://{BUCKET}/{key}", recorded_at="20250101T000000000000Z")

    def run(name: str = "report.json", **config) -> dict:
        serving_cloud.put_config(MODEL, CHURN | config)
        return handler(load_event("violation", name), lambda_context)

    return run


def given_report(cloud, violations=DRIFT, metrics=METRICS) -> None:
    cloud.put_json(f"{REPORT}/constraint_violations.json", {"violations": violations})
    cloud.put_json(f"{REPORT}/drift_metrics.json", metrics)


def given_retrain(minutes_ago: float, execution: str) -> None:
    ledger.put_retrain(MODEL, at=ledger.timestamp(datetime.now(UTC) - timedelta(minutes=minutes_ago)),
                       execution=execution, run_id=f"churn-drift-{execution[-12:]}")


def monitors() -> list[dict]:
    return ledger.list_monitors(MODEL)


QUALITY = "monitoring/churn/monitor-churn-0123456789ab/quality"
LABELLED = "monitoring/churn/monitor-churn-0123456789ab/labelled/labelled_traffic.csv"


def given_quality(cloud, matched: int = 400, realized: float | None = 0.61, estimated: float = 0.86) -> None:
    """The model-quality job's report: the realized and estimated AUC, and the labelled requests it kept."""
    violated = realized is not None and realized < 0.75
    cloud.put_json(f"{QUALITY}/quality_metrics.json", {
        "problem": "binary", "metric": "auc", "threshold": 0.75,
        "labels": {"records": 500, "matched": matched, "missing": 500 - matched, "late": 3, "pending": 0},
        "metrics": {"auc": realized, "accuracy": 0.6} if realized is not None else {},
        "estimated": {"auc": estimated}, "estimation": "confidence-based (CBPE)",
        "violations": [{"metric_name": "auc", "constraint_check_type": "LessThanThreshold",
                        "description": f"Metric auc with {realized} was LessThanThreshold '0.75'"}] if violated else [],
        "labelled": {"file": "labelled_traffic.csv", "rows": matched, "columns": 5}})
    cloud.s3.put_object(Bucket=BUCKET, Key=LABELLED, Body=churn_csv(matched))


def no_new_uploads() -> None:
    """The champion was trained on every uploaded dataset."""
    ledger.mark_consumed(MODEL, [d["sk"] for d in ledger.unconsumed_datasets(MODEL)], "churn-upload-champion00")


def test_every_sample_event_has_a_test():
    assert set(event_files("violation")) == {"report.json", "no_data.json", "analysis_failed.json", "quality.json",
                                             "labels_arrived.json"}


def test_quality(decide, serving_cloud):
    # Given drift, and labels showing the model's AUC fell below the threshold on 400 predictions
    given_report(serving_cloud)
    given_quality(serving_cloud, matched=400, realized=0.61)
    # When the execution is judged
    result = decide("quality.json")
    # Then it retrains on the quality trigger, with the labelled traffic as a dataset of its own
    assert (result["status"], result["action"]) == ("CompletedWithViolations", "retrain")
    assert result["run_id"].startswith("churn-quality-")
    assert "realized auc 0.61 below the threshold 0.75 on 400 labelled predictions" in result["reason"]
    labelled = [d for d in ledger.list_datasets(MODEL) if d.get("source") == "labelled_traffic"]
    assert [(d["rows"], d["key"], d["consumed_by"]) for d in labelled] == [(400, LABELLED, result["run_id"])]
    assert labelled[0]["s3_uri"].endswith("/datasets/churn/20251126T100000000000Z/labelled_traffic.csv")
    manifest = serving_cloud.read_json(f"artifacts/churn/{result['run_id']}/input/datasets.manifest")
    assert labelled[0]["s3_uri"].split("/", 3)[3] in manifest
    # and the MONITOR item keeps the quality findings beside the drift ones
    (item,) = monitors()
    assert item["quality"]["metrics"]["auc"] == 0.61 and item["quality"]["labels"]["matched"] == 400
    assert item["violations"] == DRIFT
    (retrain,) = ledger.retrains_since(MODEL, "2000")
    assert retrain["trigger"] == "quality"


def test_drift_without_new_labelled_data_waits_for_labels(decide, serving_cloud):
    # Given drift, but no upload the champion has not seen, and only 20 labelled predictions so far
    no_new_uploads()
    given_report(serving_cloud)
    given_quality(serving_cloud, matched=20, realized=0.5)
    result = decide("quality.json")
    # Then no run starts: a retrain would learn nothing new; the retrain waits for labels
    assert result["action"] == "wait_for_labels" and serving_cloud.executions() == []
    assert "no labelled data newer than the champion's" in result["reason"]
    assert "20 labelled predictions so far, 200 needed" in result["reason"]
    assert ledger.get_pending_retrain(MODEL)["execution"] == "monitor-churn-0123456789ab"


def labels_arrive_for_a_pending_retrain(decide, serving_cloud, *, matched: int, realized: float) -> dict:
    """Given a retrain pending since an earlier drift and no new traffic, labels arrive showing this AUC."""
    no_new_uploads()
    ledger.set_pending_retrain(MODEL, since="2025-11-26T08:00:00.000000Z", execution="earlier", reason="drift")
    given_quality(serving_cloud, matched=matched, realized=realized)
    return decide("labels_arrived.json")


def test_labels_arriving_that_hold_clear_the_pending_retrain(decide, serving_cloud):
    # Given a retrain pending since an earlier drift, and labels arriving (no new traffic) that show the AUC held
    result = labels_arrive_for_a_pending_retrain(decide, serving_cloud, matched=400, realized=0.86)
    # Then nothing is retrained and the pending retrain is cleared, saying why
    assert (result["status"], result["action"]) == ("Completed", "none")
    assert result["reason"].startswith("quality held: realized auc 0.86 meets the threshold 0.75")
    assert ledger.get_pending_retrain(MODEL) is None and serving_cloud.executions() == []


def test_labels_arriving_that_confirm_the_drop_retrain_though_no_new_traffic_came(decide, serving_cloud):
    result = labels_arrive_for_a_pending_retrain(decide, serving_cloud, matched=300, realized=0.55)
    assert (result["status"], result["action"]) == ("CompletedWithViolations", "retrain")
    assert ledger.get_pending_retrain(MODEL) is None


def test_an_estimate_below_the_threshold_alerts_and_keeps_waiting(decide, serving_cloud):
    no_new_uploads()
    given_quality(serving_cloud, matched=0, realized=None, estimated=0.7)
    result = decide("labels_arrived.json")
    assert result["action"] == "alert" and result["reason"].startswith("estimated auc 0.7 below the threshold")
    assert ledger.get_pending_retrain(MODEL) is not None and serving_cloud.executions() == []


def test_a_malformed_quality_report_alerts_and_never_retrains(decide, serving_cloud):
    serving_cloud.put_json(f"{QUALITY}/quality_metrics.json", {"metrics": "high"})
    result = decide("labels_arrived.json")
    assert (result["status"], result["action"]) == ("Failed", "alert")
    assert "not in the quality monitor's format" in result["reason"] and serving_cloud.executions() == []


def test_report(decide, serving_cloud, capsys):
    # Given a report with two drifted features
    given_report(serving_cloud)
    # When it is judged under the default policy (retrain, all check types, one feature is enough)
    result = decide()
    # Then a drift run starts, on the monitoring execution as its cause
    assert (result["status"], result["action"]) == ("CompletedWithViolations", "retrain")
    assert result["run_id"].startswith("churn-drift-") and result["run_id"] in result["reason"]
    assert [e["name"] for e in serving_cloud.executions()] == [result["run_id"]]
    assert serving_cloud.execution_input(result["run_id"])["trigger"] == "drift"
    # and the decision is a MONITOR item with the violations, drift and window, and the retrain a RETRAIN item
    (item,) = monitors()
    assert item["sk"] == "MONITOR#2025-11-26T10:00:00.000000Z#monitor-churn-0123456789ab"
    assert item["violations"] == DRIFT and item["rows"] == 300 and item["run_id"] == result["run_id"]
    assert item["drift"] == {"monthly_charges": 0.41, "plan": 0.3, "tenure_months": 0.02, "region": None}
    assert item["window_end"] == "2025-11-26T10:00:00.000000Z" and item["report_uri"].endswith("/report")
    (retrain,) = ledger.retrains_since(MODEL, "2000")
    assert retrain["run_id"] == result["run_id"] and retrain["features"] == ["monthly_charges", "plan"]
    # and a notification, and a drift distance metric per feature that has one
    [note] = serving_cloud.notifications()
    assert note["event"] == "monitor.retrain" and note["message"]["run_id"] == result["run_id"]
    out = capsys.readouterr().out
    distances = [line for line in out.splitlines() if '"DriftDistance"' in line]
    assert len(distances) == 3 and all('"feature"' in line and '"model":"churn"' in line for line in distances)
    assert emitted_metrics(out)["MonitorRetrain"] == [1.0]


def test_no_violations_change_nothing(decide, serving_cloud):
    # Given a report without violations; then nothing happens
    given_report(serving_cloud, violations=[], metrics=METRICS | {"violation_count": 0})
    result = decide()
    assert (result["status"], result["action"]) == ("Completed", "none")
    assert "no violations in 300 rows" in result["reason"]
    assert serving_cloud.executions() == []


@pytest.mark.parametrize(("config", "action", "why"), [
    ({"monitor": {"check_types": ["completeness_check"]}}, "none", "0 feature(s) by the counted checks"),
    ({"monitor": {"min_drifted_features": 3}}, "none", "fewer than min_drifted_features 3"),
    ({"retrain": {"on_violation": "alert"}}, "alert", "retrain.on_violation is alert"),
    ({"retrain": {"on_violation": "none"}}, "none", "retrain.on_violation is none"),
])
def test_the_models_policy_decides(decide, serving_cloud, config, action, why):
    # Given the drift report, judged by a policy that counts other checks, wants more features, or only alerts
    given_report(serving_cloud)
    result = decide(**config)
    assert result["action"] == action and why in result["reason"], result
    assert serving_cloud.executions() == [] and ledger.retrains_since(MODEL, "2000") == []


def test_a_retrain_inside_the_cooldown_is_suppressed(decide, serving_cloud):
    # Given a drift retrain 30 minutes ago, and a 60-minute cooldown
    given_retrain(30, "monitor-churn-aaaaaaaaaaaa")
    given_report(serving_cloud)
    # Then the same violations alert instead, saying why
    result = decide(retrain={"cooldown_minutes": 60})
    assert (result["action"], result["suppressed"]) == ("alert", "cooldown")
    assert "within the cooldown of 60 minutes" in result["reason"]
    assert serving_cloud.executions() == []
    (item,) = monitors()
    assert item["suppressed"] == "cooldown" and item["action"] == "alert"
    assert serving_cloud.notifications()[0]["event"] == "monitor.alert"


def test_a_retrain_above_the_daily_cap_is_suppressed(decide, serving_cloud):
    # Given two drift retrains in the last 24 hours (outside the cooldown) and a cap of two
    given_retrain(300, "monitor-churn-bbbbbbbbbbbb")
    given_retrain(600, "monitor-churn-cccccccccccc")
    given_retrain(60 * 30, "monitor-churn-dddddddddddd")  # yesterday's does not count
    given_report(serving_cloud)
    result = decide(retrain={"cooldown_minutes": 60, "daily_cap": 2})
    assert (result["action"], result["suppressed"]) == ("alert", "daily_cap")
    assert "2 retrain(s) started by the monitor in the last 24 hours reach the daily cap of 2" in result["reason"]
    assert serving_cloud.executions() == []


def test_a_retrain_while_a_run_is_in_flight_is_suppressed(decide, serving_cloud):
    # Given another run of the model in flight (it holds the model's lock)
    ledger.acquire_lock(MODEL, "churn-upload-0f0f0f0f0f0f", ttl_seconds=3600)
    given_report(serving_cloud)
    result = decide()
    assert (result["action"], result["suppressed"]) == ("alert", "run_in_flight")
    assert "churn-upload-0f0f0f0f0f0f is in flight" in result["reason"]
    assert serving_cloud.executions() == [] and ledger.retrains_since(MODEL, "2000") == []


@pytest.mark.parametrize("broken", ["missing", "not json", "wrong shape"])
def test_a_malformed_report_alerts_and_never_retrains(decide, serving_cloud, broken):
    # Given a report that cannot be read; then an alert with the reason, never a retrain
    given_report(serving_cloud)
    key = f"{REPORT}/constraint_violations.json"
    if broken == "missing":
        serving_cloud.s3.delete_object(Bucket=BUCKET, Key=key)
    else:
        body = b"{violations" if broken == "not json" else b'{"violations": [{"feature": "x"}]}'
        serving_cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    result = decide()
    assert (result["status"], result["action"]) == ("Failed", "alert") and "no retrain" in result["reason"]
    assert serving_cloud.executions() == []
    # and the window is left for the next execution to analyse
    assert "window_end" not in monitors()[0]


def test_no_data(decide, serving_cloud):
    # Given a window without captured traffic
    result = decide("no_data.json")
    # Then nothing happens, the reason is kept, and the next window starts after this one
    assert (result["status"], result["action"]) == ("Completed", "none")
    assert result["reason"].startswith("no captured traffic between")
    (item,) = monitors()
    assert item["window_end"] == "2025-11-26T11:00:00.000000Z"
    assert serving_cloud.notifications()[0]["event"] == "monitor.none"


def test_analysis_failed(decide, serving_cloud):
    # Given an execution whose analysis job failed
    result = decide("analysis_failed.json")
    # Then it is recorded as Failed with the error, alerting, with no window
    assert (result["status"], result["action"]) == ("Failed", "alert")
    assert result["reason"].startswith("monitoring failed: States.TaskFailed") and "AlgorithmError" in result["reason"]
    (item,) = monitors()
    assert item["execution"] == "monitor-churn-0a0b0c0d0e0f" and "window_end" not in item


def test_a_retried_invocation_decides_once(decide, serving_cloud):
    # Given the same invocation twice (a Lambda retry); then one decision, one run, one RETRAIN
    given_report(serving_cloud)
    first, second = decide(), decide()
    assert first == second and len(serving_cloud.executions()) == 1
    assert len(monitors()) == 1 and len(ledger.retrains_since(MODEL, "2000")) == 1
