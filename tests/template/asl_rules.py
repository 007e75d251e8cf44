"""House rules every state machine's Lambda tasks (and the EventBridge rules that trigger functions) follow,
shared by the template tests."""

# Errors a Lambda task retries: the Lambda service's transient ones, and a function that died (out of
# memory, killed) after its work, which is safe to retry because every handler is idempotent.
LAMBDA_TRANSIENT_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    "Lambda.ClientExecutionTimeoutException",
}
MAX_ATTEMPTS = 6


def assert_retried_boundedly(name: str, state: dict) -> None:
    """A Task retries, every retrier is bounded and backs off, and a Lambda task retries the transient errors first."""
    assert state["Retry"], name
    for retry in state["Retry"]:
        bounded = 1 <= retry["MaxAttempts"] <= MAX_ATTEMPTS and retry["BackoffRate"] >= 1
        assert retry["MaxAttempts"] == 0 or bounded, name
    if state["Resource"] == "arn:aws:states:::lambda:invoke":
        assert set(state["Retry"][0]["ErrorEquals"]) == LAMBDA_TRANSIENT_ERRORS, name

def assert_delivered_with_retries_and_a_dead_letter_queue(template: dict, rule: str, function: str, dlq: str) -> None:
    """An EventBridge rule's one target is the function, with bounded retries and a dead-letter queue, and the
    function's permission is for that rule alone."""
    (target,) = template["Resources"][rule]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
    assert 0 < target["RetryPolicy"]["MaximumRetryAttempts"] <= 185
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    permission = template["Resources"][f"{rule}Permission"]["Properties"]
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule, "Arn"]}


# The error names a Task can be failed with, by integration, as Step Functions names them (the local cloud's
# own table: selfheal_bench.localcloud.sfn_integrations). Every Retry and Catch names only these, or States.*:
# a retrier on a name AWS never produces never fires there.
STATES_ERRORS = {"States.ALL", "States.TaskFailed", "States.Timeout", "States.HeartbeatTimeout",
                 "States.Permissions", "States.Runtime"}
STEP_FUNCTIONS_ERRORS = {"StepFunctions.ExecutionLimitExceededException",
                         "StepFunctions.ExecutionAlreadyExistsException", "StepFunctions.SdkClientException",
                         "StepFunctions.AWSStepFunctionsException"}


def produced_errors(resource: str) -> set[str]:
    """The error names a Task with this Resource fails with, besides States.* ones and a function's own."""
    from selfheal_bench.localcloud.sfn_integrations import sagemaker_error_names

    if resource.startswith("arn:aws:states:::sagemaker:"):
        return sagemaker_error_names("optimized")
    if resource.startswith("arn:aws:states:::aws-sdk:sagemaker:"):
        return sagemaker_error_names("aws-sdk")
    if resource.startswith("arn:aws:states:::lambda:invoke"):
        return LAMBDA_TRANSIENT_ERRORS
    if resource.startswith("arn:aws:states:::states:startExecution"):
        return STEP_FUNCTIONS_ERRORS
    raise AssertionError(f"no table of the errors {resource} fails with")


def first_retrier(retry: list[dict], error: str) -> dict | None:
    """The retrier Step Functions applies to `error`: the first whose ErrorEquals matches it."""
    for retrier in retry:
        names = set(retrier["ErrorEquals"])
        wildcard = "States.ALL" in names or ("States.TaskFailed" in names and not error.startswith("States."))
        if error in names or wildcard:
            return retrier
    return None


# A refused SageMaker call worth retrying: the account's quota of concurrent jobs or endpoints, which frees
# as they end. Every other refusal is permanent, or shares its name with permanent ones (a throttled call is
# AmazonSageMakerException, like a ValidationException), and is not retried.
SAGEMAKER_TRANSIENT_ERRORS = {"SageMaker.ResourceLimitExceededException"}


def all_states(definition: dict) -> list[tuple[str, dict]]:
    """Every state of a definition, with those inside Parallel branches and Map processors."""
    found = []
    for name, state in definition["States"].items():
        found.append((name, state))
        for inner in state.get("Branches", []) + [p for p in (state.get("ItemProcessor"), state.get("Iterator")) if p]:
            found += all_states(inner)
    return found
