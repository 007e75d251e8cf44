"""The call audit attributes every AWS call a function makes to the function, including those boto3's
transfer manager makes in its worker threads (s3.copy's HeadObject and CopyObject, upload_file,
download_file), so the least-privilege check sees them; AWS checks each against the caller's role."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from selfheal_bench.localcloud.audit import CallAudit
from selfheal_bench.localcloud.faults import Faults

BUCKET = "data"


@pytest.fixture
def audit(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallAudit]:
    for key, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    audit = CallAudit(Faults())
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("s3").put_object(Bucket=BUCKET, Key="incoming/a.csv", Body=b"a,b\n1,2\n")
        undo = audit.patch()
        try:
            yield audit
        finally:
            undo()


def test_the_transfer_managers_calls_are_the_functions(audit, tmp_path: Path):
    s3 = boto3.client("s3")
    # When a function copies, downloads and uploads with boto3's managed transfers
    with audit.acting_as("IngestFunction"):
        s3.copy({"Bucket": BUCKET, "Key": "incoming/a.csv"}, BUCKET, "datasets/a.csv")
        s3.download_file(BUCKET, "incoming/a.csv", str(tmp_path / "a.csv"))
        s3.upload_file(str(tmp_path / "a.csv"), BUCKET, "quarantine/a.csv")
    # Then every call the transfers made, in whatever thread, is recorded as the function's
    calls = {(c.principal, c.operation, c.params.get("Key")) for c in audit.calls}
    assert {("IngestFunction", "HeadObject", "incoming/a.csv"), ("IngestFunction", "CopyObject", "datasets/a.csv"),
            ("IngestFunction", "GetObject", "incoming/a.csv"),
            ("IngestFunction", "PutObject", "quarantine/a.csv")} <= calls


def test_work_a_function_did_not_hand_over_is_not_the_functions(audit):
    # Given a pool's thread doing its own work, and a thread a function started its work from
    with ThreadPoolExecutor(1) as pool:
        pool.submit(boto3.client("s3").list_objects_v2, Bucket=BUCKET).result(timeout=30)
    # Then calls made outside any function are nobody's
    assert audit.calls == []
