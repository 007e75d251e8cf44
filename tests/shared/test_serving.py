"""The serving side's shared parts: settings, names, and the ledger items it adds (ENDPOINT, MONITOR, RETRAIN)."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from selfheal_bench.fixtures.serving import SERVING_ENVIRONMENT
from selfheal_shared import ledger, serving
from selfheal_shared.errors import SettingsError

LONGEST_MODEL = "m" * 54
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/selfheal-churn/7"


def test_settings_are_read_once_and_a_bad_variable_is_named(serving_env, monkeypatch):
    settings = serving.get_serving_settings()
    assert settings.deploy_pipeline_arn == SERVING_ENVIRONMENT["DEPLOY_PIPELINE_ARN"]
    assert (settings.rollback_server_errors, settings.deploy_poll_seconds) == (1, 30)
    assert serving.get_serving_settings() is settings

    monkeypatch.setenv("DEPLOY_POLL_SECONDS", "often")
    monkeypatch.delenv("SCHEDULE_GROUP")
    serving.reset()
    with pytest.raises(SettingsError, match="SCHEDULE_GROUP: Field required.*DEPLOY_POLL_SECONDS"):
        serving.get_serving_settings()


def test_names_fit_sagemaker_scheduler_and_step_functions_for_the_longest_model():
    # Given the longest model name the config allows
    # Then every name built from it fits its service's limit
    assert len(serving.endpoint_name(LONGEST_MODEL)) <= 63
    assert len(serving.deployment_name(LONGEST_MODEL, "deploy-" + "f" * 64)) <= 63
    assert len(serving.schedule_name(LONGEST_MODEL)) <= serving.SCHEDULE_NAME_MAX
    assert len(serving.deploy_execution_name(PACKAGE)) <= 80
    assert all(len(alarm) <= 255 for alarm in serving.rollback_alarm_names(LONGEST_MODEL).values())


def test_names_are_deterministic_and_distinct():
    # The deploy execution name is the ASL's States.Hash(arn, 'SHA-256'), whole
    assert serving.deploy_execution_name(PACKAGE) == "deploy-" + hashlib.sha256(PACKAGE.encode()).hexdigest()
    assert serving.schedule_name("churn") == "selfheal-monitor-churn"
    # two long models that share a prefix still get schedules of their own
    assert serving.schedule_name("a" * 50 + "1") != serving.schedule_name("a" * 50 + "2")
    assert serving.deployment_name("churn", "one") != serving.deployment_name("churn", "two")
    assert serving.scalable_resource_id("churn") == "endpoint/selfheal-churn/variant/AllTraffic"


def test_the_endpoint_keeps_its_history(cloud):
    # Given two rollouts recorded on the model's ENDPOINT item
    ledger.record_endpoint("churn", {"outcome": "deployed", "at": "1"}, endpoint_name="selfheal-churn",
                           model_package_arn=PACKAGE, status="InService")
    item = ledger.record_endpoint("churn", {"outcome": "rolled_back", "at": "2", "score": 0.5}, status="InService",
                                  model_package_arn=None)
    # Then the serving package is kept (None leaves a field alone) and the history has both, in order
    assert item["model_package_arn"] == PACKAGE and ledger.get_endpoint("churn") == item
    assert [h["outcome"] for h in item["history"]] == ["deployed", "rolled_back"]
    assert item["history"][1]["score"] == 0.5


def test_the_champion_is_annotated_only_while_it_is_the_same_package(cloud):
    ledger.set_champion("churn", model_package_arn=PACKAGE, run_id="r", model_data_url="s3://b/m.tar.gz",
                        metrics={"auc": 0.9})
    assert ledger.annotate_champion("churn", PACKAGE, baseline_uri="s3://b/baseline")
    assert ledger.get_champion("churn")["baseline_uri"] == "s3://b/baseline"
    assert not ledger.annotate_champion("churn", PACKAGE.replace("/7", "/8"), baseline_uri="s3://b/other")
    assert ledger.get_champion("churn")["baseline_uri"] == "s3://b/baseline"


def test_the_next_window_starts_where_the_last_judged_one_ended(cloud):
    # Given an analysed window, a later failed execution (no window), and an earlier one
    one, two, three = (f"2026-01-01T0{hour}:00:00.000000Z" for hour in (1, 0, 2))
    ledger.put_monitor("churn", at=one, execution="a", window_end=one)
    ledger.put_monitor("churn", at=two, execution="b", window_end=two)
    ledger.put_monitor("churn", at=three, execution="c", status="Failed")
    # Then the newest judged window's end is where the next starts, and items list newest first
    assert ledger.last_window_end("churn") == one
    assert [m["execution"] for m in ledger.list_monitors("churn")] == ["c", "a", "b"]
    # and a repeated MONITOR item (same window end and execution) is not a second one
    _, created = ledger.put_monitor("churn", at=one, execution="a")
    assert not created and ledger.last_window_end("other") is None


def test_retrains_are_counted_since_a_moment(cloud):
    now = datetime.now(UTC)
    for hours, execution in ((1, "x"), (5, "y"), (30, "z")):
        ledger.put_retrain("churn", at=ledger.timestamp(now - timedelta(hours=hours)), execution=execution)
    recent = ledger.retrains_since("churn", ledger.timestamp(now - timedelta(days=1)))
    assert [r["execution"] for r in recent] == ["x", "y"]
