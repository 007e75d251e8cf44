"""The harness itself: a promise that did not hold is reported as a problem (and `make reliability` exits 1),
never a crash of the harness halfway through."""

from __future__ import annotations

from selfheal_bench.reliability import MODEL, STORY_CONFIG, Traffic, request_rows
from selfheal_bench.reliability.serving_story import _schedule_twice


def test_a_story_whose_model_never_deployed_reports_it_instead_of_crashing(cloud, tmp_path):
    # Given no model ever deployed (the story's first run failed): no endpoint, no monitor schedule
    cloud.put_model_config(MODEL, STORY_CONFIG)
    with Traffic(cloud, MODEL, request_rows(5, seed=1, shift=0.0)) as traffic:
        # When the duplicate-schedule step runs
        duplicates = _schedule_twice(cloud, tmp_path, traffic)
    # Then it says what did not happen, as problems
    assert "2 deliveries of the monitor schedule started 0 runs" in duplicates.problems()
