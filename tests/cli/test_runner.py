"""How `selfheal local run` shows the path each execution took."""

from selfheal.runner import compact_path, describe_execution


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
