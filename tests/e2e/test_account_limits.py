"""The stack deploys on the accounts it is meant for: Lambda keeps at least 100 concurrent executions
unreserved in an account ("Lambda function scaling": reserved concurrency), and new accounts may have a
concurrency quota of 10, so the template reserves none unless told to."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from selfheal_bench.localcloud import LocalCloud


def test_the_template_deploys_with_its_defaults_on_a_new_account_with_a_small_concurrency_quota(tmp_path: Path):
    # Given an account whose concurrency quota is 10, as a new account's may be
    # When the stack is deployed with its defaults; Then it deploys, reserving no concurrency
    with LocalCloud(tmp_path / "cloud", concurrency_quota=10) as cloud:
        functions = cloud.client("lambda").list_functions()["Functions"]
        assert functions and all("ReservedConcurrentExecutions" not in cloud.client("lambda").get_function(
            FunctionName=f["FunctionName"]).get("Concurrency", {}) for f in functions)


def test_reserving_concurrency_is_refused_where_it_would_leave_fewer_than_100_unreserved(tmp_path: Path):
    # Given the same account, and a deployment that reserves 10 per function
    # Then Lambda refuses it, as it refuses any reservation that leaves fewer than 100 unreserved
    with pytest.raises(ClientError, match="UnreservedConcurrentExecution below its minimum value of \\[100\\]"), \
            LocalCloud(tmp_path / "cloud", concurrency_quota=110, parameters={"ReservedConcurrency": "10"}):
        pass
