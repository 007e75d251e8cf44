"""A burst of uploads across five models, a fifth of them delivered twice: nothing is lost, nothing is
recorded twice, and each model has at most one run in flight."""

from __future__ import annotations

from selfheal_bench.reliability import BURST_MODELS, burst


def test_a_burst_of_uploads_loses_nothing_and_runs_one_at_a_time_per_model(cloud, size):
    # Given five models that train once two uploads have arrived
    # When uploads arrive within seconds, a fifth of them delivered again and every eighth one broken
    result = burst(cloud, size.burst_uploads, size.burst_trains)
    report = result.summary()

    # Then every distinct upload is in the ledger exactly once: a dataset, or quarantined with its reason
    distinct = size.burst_uploads - size.burst_uploads // 5
    assert (report["deliveries"], report["redeliveries"], report["distinct_uploads"]) == (
        size.burst_uploads, size.burst_uploads // 5, distinct)
    assert result.lost == [] and result.doubled == []
    assert report["datasets"] + report["quarantined"] == distinct
    assert report["quarantined"] == distinct // 8
    assert (report["lost"], report["recorded_twice"], report["dead_letters"]) == (0, 0, 0)
    # And every model trained, never with two runs in flight at once (its runs' ledger intervals do not overlap)
    assert {model for model, runs in result.runs.items() if runs} == set(BURST_MODELS)
    assert report["in_flight_max"] == dict.fromkeys(BURST_MODELS, 1)
    # And nothing is left behind in incoming/
    assert cloud.client("s3").list_objects_v2(Bucket=cloud.bucket, Prefix="incoming/")["KeyCount"] == 0
