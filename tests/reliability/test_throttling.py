"""A throttled AWS call inside a pipeline function: DynamoDB's ProvisionedThroughputExceededException on the
Gate's ledger write, past what the SDK's own retries absorb (a hot partition can do that). Throttling is
transient: the run should back off and go on, as it does when Lambda itself throttles the function.
(Throttling in IngestFunction, retried by Lambda's async retries: test_serving_story.py's transient step.)"""

from __future__ import annotations

from selfheal_bench.reliability import throttle_in_pipeline


def test_a_throttled_write_in_a_pipeline_function_is_retried_and_the_run_succeeds(cloud, inbox, tmp_path):
    # Given a run in flight, When DynamoDB throttles the Gate's write past the SDK's retries
    result = throttle_in_pipeline(cloud, tmp_path, inbox.read)
    # Then the write was throttled (a run without the fault ends the same way)
    assert [(f.injection.target, f.fired) for f in result.faults] == [("api:dynamodb:UpdateItem", 1)]
    # And the run still registers its model, with no failure announced
    assert result.counts == result.expected, result.problems()
