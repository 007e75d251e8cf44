"""A function that dies after its side effects (its response lost) is retried, and the retry does
nothing twice: one dataset, one quarantine, one run, one package, one notification per outcome.
(That every Lambda task retries Lambda.Unknown, a function that died: tests/template.)"""

from __future__ import annotations

from selfheal_bench.reliability import crash_in_ingest, crash_in_pipeline


def test_ingest_dying_after_its_side_effects_is_retried_without_doing_anything_twice(cloud, inbox, tmp_path):
    # Given IngestFunction dies right after handling each of a good and a broken upload
    # When Lambda retries the asynchronous invocations (as it does, twice at most)
    result = crash_in_ingest(cloud, tmp_path, inbox.read)
    # Then the function died after each upload (a run without the fault counts the same)
    assert [(f.injection.target, f.fired) for f in result.faults] == [("lambda:IngestFunction", 2)]
    # And each upload was handled once: one dataset and its copy, one quarantine and its reason, one alert
    assert result.problems() == []
    assert result.counts == result.expected


def test_pipeline_functions_dying_after_their_side_effects_are_retried_without_double_effects(cloud, inbox, tmp_path):
    # Given RegisterModelFunction dies after registering the package, and RecordRunFunction after recording
    # the run and notifying (Step Functions sees Lambda.Unknown)
    result = crash_in_pipeline(cloud, tmp_path, inbox.read)
    # Then each function died once (a run without the faults counts the same)
    assert [(f.injection.target, f.fired) for f in result.faults] == [
        ("lambda:RegisterModelFunction", 1), ("lambda:RecordRunFunction", 1)]
    # And the run still succeeds with one package and one notification: not a FAILED run whose package
    # stays in the registry (a reviewer could approve it), nor a success announced and then a failure
    assert result.counts == result.expected, result.problems()

