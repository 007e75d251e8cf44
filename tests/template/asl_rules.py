"""House rules every state machine's Lambda tasks follow, shared by the template tests."""

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
