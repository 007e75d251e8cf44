"""boto3 clients, created on first use (never at import) and cached, so tests and the local cloud
decide which endpoint and credentials they talk to. `reset()` forgets them all."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.config import Config

from selfheal_shared.settings import get_settings

# Standard retry mode backs off on throttling (DynamoDB, SNS, Step Functions) within the invocation.
_BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})


@cache
def client(service: str) -> Any:
    """The client of one service (boto3's name for it: "s3", "sagemaker-runtime", ...)."""
    return boto3.client(service, config=_BOTO_CONFIG)


@cache
def dynamodb() -> Any:
    return boto3.resource("dynamodb", config=_BOTO_CONFIG)


@cache
def ledger_table() -> Any:
    return dynamodb().Table(get_settings().ledger_table)


@cache
def idempotency_store(name: str) -> DynamoDBPersistenceLayer:
    """One persistence layer per idempotent step: Powertools configures a layer once, from the
    first IdempotencyConfig it sees, so steps must not share one. Records live in the ledger."""
    return DynamoDBPersistenceLayer(
        table_name=get_settings().ledger_table,
        key_attr="pk",
        sort_key_attr="sk",
        expiry_attr="expiration",
        static_pk_value=f"IDEMPOTENCY#{name}",
        boto3_client=client("dynamodb"),
    )


_GETTERS = (client, dynamodb, ledger_table, idempotency_store)


def reset() -> None:
    """Forget every cached client (tests start a fresh moto account per test)."""
    for getter in _GETTERS:
        getter.cache_clear()
