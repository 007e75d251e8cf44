"""The backtest's arithmetic: cost from job records and endpoint hours at the price table's rates, and the
realized metric over time (hours below the threshold, the mean)."""

from datetime import UTC, datetime, timedelta

import pytest
from selfheal_bench.backtest_figures import (
    JobRecord,
    Point,
    PriceMissing,
    Prices,
    Serving,
    costs,
    hours_below,
    mean_metric,
)

T0 = datetime(2026, 1, 5, tzinfo=UTC)
PRICES = Prices({"training": {"ml.m5.xlarge": 0.23}, "processing": {"ml.m5.large": 0.115},
                 "hosting": {"ml.m5.large": 0.115}}, "https://aws.amazon.com/sagemaker/pricing/", "2026-12-06")


def point(days: float, metric: float | None, served_days: float | None = None) -> Point:
    return Point(T0 + timedelta(days=days + 2), T0 + timedelta(days=days if served_days is None else served_days),
                 "arn:pkg/1", metric, "MONITOR#test")


def test_cost_is_seconds_times_instances_times_the_hourly_price_and_endpoint_hours_in_simulated_time():
    # Given a training job of 1800 s on 2 instances, a processing job of 360 s, and an endpoint serving 10 days
    jobs = [JobRecord("train", "training", "ml.m5.xlarge", 2, 1800.0),
            JobRecord("prep", "processing", "ml.m5.large", 1, 360.0)]
    fleet = [Serving("ml.m5.large", 1, T0, T0 + timedelta(days=10))]
    # When they are priced
    found = costs(jobs, fleet, PRICES)
    # Then each is its hours at its rate, and the total their sum
    assert found == {"training": 0.23, "processing": 0.0115, "hosting": 27.6, "total": 27.8415}


def test_an_instance_type_without_a_price_is_refused_by_name():
    with pytest.raises(PriceMissing, match="no hosting price for ml.p4d.24xlarge in prices.yaml"):
        PRICES.hourly("hosting", "ml.p4d.24xlarge")


def test_the_repositorys_price_table_names_its_source_and_date():
    prices = Prices.load()
    assert prices.source.startswith("https://aws.amazon.com/sagemaker/pricing")
    assert prices.taken == "2026-12-06"
    assert prices.hourly("hosting", "ml.m5.large") > 0


def test_hours_below_count_from_a_batchs_traffic_until_the_next_batch_a_rollout_or_the_end():
    # Given weekly batches: good, bad (a rollout 3 days later), bad (no rollout), and the history ending 2 days on
    points = [point(0, 0.80), point(7, 0.70), point(14, 0.60)]
    rollouts = [T0 + timedelta(days=10)]
    end = T0 + timedelta(days=16)
    # Then the second counts until the rollout (3 days), the third until the end (2 days); the first not at all
    assert hours_below(points, rollouts, end, 0.75, greater_is_better=True) == 5 * 24


def test_for_a_lower_is_better_metric_above_the_threshold_is_below_it():
    points = [point(0, 0.3), point(1, 0.1)]
    assert hours_below(points, [], T0 + timedelta(days=2), 0.2, greater_is_better=False) == 24


def test_the_mean_metric_counts_each_scored_batch_once_and_skips_unscored_ones():
    assert mean_metric([point(0, 0.8), point(7, None), point(14, 0.6)]) == pytest.approx(0.7)
    assert mean_metric([point(0, None)]) is None
