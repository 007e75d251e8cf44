"""The one decorator every function's lambda_handler wears, and the Logger and Metrics they share.

    @handler(GateRequest)
    def lambda_handler(event: GateRequest, context: LambdaContext) -> dict[str, Any]: ...

From the outside in: Powertools' Logger adds the Lambda context (and the correlation id, for EventBridge
events) and starts each invocation clean; Metrics flushes what the invocation added (EMF); the event is parsed
into the function's typed model (pydantic's ValidationError names the field); an AWS throttling error is raised
as AwsThrottled, which the state machines retry with backoff.

Tracing: Lambda's active tracing (template.yaml) records every invocation in X-Ray. The X-Ray SDK behind
Powertools' Tracer is in maintenance mode and reaches end of support on 2027-02-25 (AWS: "X-Ray SDK and daemon
end of support timeline"), and it was a third of each function's cold start, so the functions do not import
it; finer spans are for OpenTelemetry (the ADOT Lambda layer), added by configuration when wanted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import BaseModel

from selfheal_shared.errors import throttling_as_retryable

logger = Logger()
metrics = Metrics()

Handler = TypeVar("Handler", bound=Callable[..., Any])


def handler(model: type[BaseModel], correlation_id_path: str | None = None) -> Callable[[Handler], Handler]:
    def decorate(function: Handler) -> Handler:
        parsed = event_parser(model=model)(throttling_as_retryable(function))
        measured = metrics.log_metrics(parsed)
        return logger.inject_lambda_context(correlation_id_path=correlation_id_path, clear_state=True)(measured)

    return decorate
