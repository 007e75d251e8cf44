"""Exactly-once steps with Powertools idempotency, records kept in the ledger table.

The persistence layer is built on first call (not at import), so the table name comes from the
settings in force when the function runs."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from selfheal_shared import aws

DEFAULT_EXPIRY_SECONDS = 2 * 24 * 3600  # EventBridge retries deliveries for up to 24 hours
# Steps nested in an idempotent invocation inherit its Lambda context: with it, a step interrupted
# by a timeout is retried once the invocation's time is up, instead of after the record expires.
_invocation: ContextVar[LambdaContext | None] = ContextVar("selfheal_lambda_context", default=None)


def run_once(
    name: str,
    step: Callable[[Any], dict[str, Any]],
    payload: BaseModel,
    *,
    key: str,
    context: LambdaContext | None = None,
    expires_after_seconds: int = DEFAULT_EXPIRY_SECONDS,
) -> dict[str, Any]:
    """Run `step(payload)` once per value of the JMESPath `key` over the payload; a repeat returns
    the stored result. If `step` raises, nothing is stored and the next call runs it again."""
    context = context or _invocation.get()
    config = IdempotencyConfig(
        event_key_jmespath=key,
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
    )
    if context is not None:
        config.register_lambda_context(context)

    def call(*, data: BaseModel) -> dict[str, Any]:
        return step(data)

    guarded = idempotent_function(
        call,
        data_keyword_argument="data",
        persistence_store=aws.idempotency_store(name),
        config=config,
        key_prefix=name,
    )
    token = _invocation.set(context)
    try:
        return guarded(data=payload)
    finally:
        _invocation.reset(token)
