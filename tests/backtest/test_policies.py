"""Policies are configuration overrides the product applies as it would on AWS; what cannot be replayed is
refused before anything runs."""

import pytest
from selfheal_bench.backtest import BacktestError, check, parse_policies, policy_config, schedule_interval
from selfheal_bench.backtest_figures import Prices
from selfheal_bench.scenario import Scenario, Step

CONFIG = {"target": "churned", "problem": "binary", "metric": {"name": "auc", "threshold": 0.75},
          "retrain": {"cooldown_minutes": 360, "daily_cap": 3, "window": {"mode": "latest"}}}


def test_configured_is_the_configuration_as_given():
    assert policy_config("configured", CONFIG) == CONFIG


def test_never_keeps_the_first_model_once_it_serves():
    # Before the first deployment the model trains as configured; after it, nothing starts a run
    assert policy_config("never", CONFIG) == CONFIG
    after = policy_config("never", CONFIG, first_deployed=True)
    assert after["retrain"] == CONFIG["retrain"] | {"on_violation": "none"}
    assert after["trigger"] == {"mode": "min_new_rows", "min_new_rows": 10**12}


def test_always_retrains_on_every_upload_with_no_guard_rails():
    changed = policy_config("always", CONFIG)
    assert changed["trigger"] == {"mode": "every_upload"}
    assert changed["retrain"] == {"on_violation": "retrain", "cooldown_minutes": 0, "daily_cap": 96,
                                  "window": {"mode": "latest"}}
    assert CONFIG["retrain"]["cooldown_minutes"] == 360  # the scenario's own configuration is left alone


def test_rate_schedules_fire_at_their_interval_and_cron_is_refused():
    assert schedule_interval("rate(7 days)").days == 7
    assert schedule_interval("rate(1 hour)").total_seconds() == 3600
    with pytest.raises(BacktestError, match="fires rate"):
        schedule_interval("cron(0 * * * ? *)")


def test_unknown_policies_are_refused_by_name():
    assert parse_policies("never, configured,never") == ["never", "configured"]
    with pytest.raises(BacktestError, match="unknown sometimes"):
        parse_policies("configured,sometimes")


@pytest.mark.parametrize(("change", "message"), [
    ({"deploy": {"instance_type": "ml.p4d.24xlarge"}}, "no hosting price for ml.p4d.24xlarge"),
    ({"monitor": {"schedule_expression": "cron(0 12 * * ? *)"}}, "fires rate"),
    ({"metric": {"name": "auc", "threshold": 2}}, "under policy configured: "),
])
def test_a_model_the_replay_could_not_finish_is_refused_before_anything_runs(tmp_path, change, message):
    scenario = Scenario(tmp_path / "s.yaml", {"churn": CONFIG | change}, [Step("monitor", "churn")])
    with pytest.raises(BacktestError, match=message):
        check(scenario, ["configured", "never", "always"], Prices.load())
