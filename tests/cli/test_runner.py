"""How `selfheal local run` shows what happened: the path each execution took, and one line for each
thing a person acts on."""

import csv
import io
import json

import pandas as pd
from selfheal_bench.report import ONE_LINE_CHARS, failure_of, problems
from selfheal_bench.runner import compact_path, describe_execution, describe_traffic, request_bodies


def test_a_polling_loop_is_shown_once_with_its_count():
    states = ["StartPolling"] + ["WaitForEndpoint", "DescribeEndpoint", "EndpointStatus?"] * 18 + ["SmokeTest"]
    assert compact_path(states) == (
        "StartPolling → (WaitForEndpoint → DescribeEndpoint → EndpointStatus?) ×18 → SmokeTest")


def test_a_path_without_repeats_is_shown_as_it_is():
    assert compact_path(["Preprocess", "Train", "Evaluate"]) == "Preprocess → Train → Evaluate"


def test_a_failed_execution_names_its_error():
    line = describe_execution({"state_machine": "TrainingPipeline", "name": "churn-upload-1", "status": "FAILED",
                               "error": "TrainingPipelineFailed", "states": ["Train", "RecordFailure", "Failed"]})
    assert line == ("TrainingPipeline churn-upload-1: FAILED (TrainingPipelineFailed)\n"
                    "    Train → RecordFailure → Failed")


# What a person reads on the terminal, one line per thing to act on.

PROCESSING_CAUSE = json.dumps({
    "ProcessingJobName": "churn-5bb83a3635a0-prep-1", "ProcessingJobStatus": "Failed",
    "ProcessingInputs": [{"InputName": "code", "S3Input": {"S3Uri": "s3://bucket/code/"}}] * 20,
    "FailureReason": "AlgorithmError: exit code 1\nTraceback (most recent call last):\n  ...\nValueError: no rows"})


def failed_execution(cause: str, error: str = "States.TaskFailed") -> dict:
    step = {"name": "Preprocess", "type": "Task", "status": "succeeded", "errors": [
        {"event": "TaskFailed", "error": error, "cause": cause}]}
    return {"state_machine": "TrainingPipeline", "name": "churn-upload-1", "status": "FAILED",
            "error": "TrainingPipelineFailed", "cause": "States.TaskFailed: " + "x" * 3000,
            "states": ["Preprocess", "RecordFailure", "Failed"],
            "steps": [step, {"name": "RecordFailure", "type": "Task", "status": "succeeded", "errors": []},
                      {"name": "Failed", "type": "Fail", "status": "failed", "errors": []}]}


def test_a_failed_run_names_the_state_the_job_and_its_failure_reason_on_one_line():
    line = describe_execution(failed_execution(PROCESSING_CAUSE))
    assert line == ("TrainingPipeline churn-upload-1: FAILED at Preprocess: processing job churn-5bb83a3635a0-prep-1: "
                    "AlgorithmError: exit code 1 Traceback (most recent call last): ... ValueError: no rows\n"
                    "    Preprocess → RecordFailure → Failed")


def test_a_failed_function_is_named_with_its_error():
    cause = json.dumps({"errorType": "InvalidEvaluation", "errorMessage": "s3://b/e.json is not JSON",
                        "stackTrace": ["  File ..."] * 50})
    assert failure_of(failed_execution(cause, error="InvalidEvaluation")) == (
        "at Preprocess: InvalidEvaluation: s3://b/e.json is not JSON")


def test_a_long_reason_is_cut_to_one_terminal_line():
    cause = json.dumps({"TrainingJobName": "j", "FailureReason": "x\n" * 1000})
    reason = failure_of(failed_execution(cause))
    assert "\n" not in reason and len(reason) <= ONE_LINE_CHARS + len("at Preprocess: ") and reason.endswith("…")


def test_traffic_says_how_many_rows_errored_and_the_first_error():
    sent = {"model": "churn", "file": "t.csv", "rows": 300, "errors": 300,
            "first_error": "An error occurred (ValidationException) when calling the InvokeEndpoint operation: "
                           "Could not find endpoint"}
    assert describe_traffic(sent) == ("traffic churn: 300 rows, 300 errors, first error: An error occurred "
                                      "(ValidationException) when calling the InvokeEndpoint operation: "
                                      "Could not find endpoint")
    assert describe_traffic({**sent, "errors": 0, "first_error": None}) == "traffic churn: 300 rows, 0 errors"


def test_each_row_is_one_request_even_when_a_quoted_field_holds_a_newline():
    frame = pd.DataFrame({"plan": ["pro, with\nnewline", 'say "hi"', "basic"], "usage": [1.5, None, 3.0]})
    bodies = list(request_bodies(frame))
    assert len(bodies) == 3
    assert [next(csv.reader(io.StringIO(body.decode()))) for body in bodies] == [
        ["pro, with\nnewline", "1.5"], ['say "hi"', ""], ["basic", "3.0"]]


def test_problems_list_failed_runs_quarantines_traffic_errors_and_dead_letters():
    report = {"executions": [failed_execution(PROCESSING_CAUSE)],
              "quarantined": [{"model": "_invalid", "key": "incoming/churn_v2/a.csv", "reason": "model folder\nbad"}],
              "traffic": [{"model": "churn", "file": "t.csv", "rows": 5, "errors": 2, "first_error": "boom"},
                          {"model": "churn", "file": "u.csv", "rows": 5, "errors": 0, "first_error": None}],
              "monitoring": [{"model": "churn", "status": "Failed", "reason": "monitoring failed: OOM"}],
              "dead_letters": [{"target": "arn:aws:lambda:us-east-1:1:function:selfheal-local-IngestFunction",
                                "error": "Lambda.Unknown: died"}]}
    assert problems(report) == [
        "TrainingPipeline churn-upload-1 FAILED at Preprocess: processing job churn-5bb83a3635a0-prep-1: "
        "AlgorithmError: exit code 1 Traceback (most recent call last): ... ValueError: no rows",
        "upload incoming/churn_v2/a.csv quarantined: model folder bad",
        "traffic churn t.csv: 2 of 5 requests failed, first error: boom",
        "monitor churn: Failed: monitoring failed: OOM",
        "selfheal-local-IngestFunction failed on every attempt: Lambda.Unknown: died",
    ]
