"""A fault in one function, and what exists afterwards: crashes after side effects, throttled writes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..localcloud import LocalCloud
from ..report import build_report, ledger_items
from .core import IDLE_TIMEOUT, MODEL, ROWS, STORY_CONFIG, Injected, Injection, injected, write_csv

# -- a fault in one function, and what exists afterwards ------------------------------------------------------


@dataclass
class Counted:
    """A fault in a function (one that died after its side effects, or a throttled write), and what exists
    afterwards, counted against what should."""

    name: str
    faults: list[Injected]
    counts: dict[str, int]  # what -> how many exist
    expected: dict[str, int]

    def problems(self) -> list[str]:
        found = [f"{f.injection.target} {f.injection.kind} never fired" for f in self.faults if not f.fired]
        return found + [f"{what}: {self.counts[what]}, expected {n}" for what, n in self.expected.items()
                        if self.counts[what] != n]


def crash_in_ingest(cloud: LocalCloud, folder: Path, notifications: Callable[[], list[dict[str, Any]]]) -> Counted:
    """IngestFunction dies after recording a dataset, and after quarantining an upload; Lambda retries each."""
    cloud.put_model_config(MODEL, STORY_CONFIG | {"trigger": {"mode": "min_new_rows", "min_new_rows": 10**9}})
    crash = Injection("lambda:IngestFunction", "crash_after", 2, "Lambda's async retry; ingest runs once per upload")
    with injected(cloud, (crash,)) as faults:
        cloud.upload(MODEL, write_csv(folder, "good.csv", 200, seed=21))
        cloud.client("s3").put_object(Bucket=cloud.bucket, Key=f"incoming/{MODEL}/empty.csv", Body=b"")
        cloud.wait_idle(IDLE_TIMEOUT)
    s3 = cloud.client("s3")
    copies = {prefix: s3.list_objects_v2(Bucket=cloud.bucket, Prefix=f"{prefix}/{MODEL}/").get("KeyCount", 0)
              for prefix in ("datasets", "quarantine")}
    counts = {"dataset records": len(ledger_items(cloud, MODEL, "DATASET#")), "dataset copies": copies["datasets"],
              "quarantine records": len(ledger_items(cloud, MODEL, "QUARANTINE#")),
              "quarantine files (upload + reason)": copies["quarantine"],
              "quarantine notifications": sum(n.get("event") == "upload.quarantined" for n in notifications()),
              "dead letters": len(cloud.dead_letters)}
    return Counted("IngestFunction dies after its side effects", faults, counts,
                   {"dataset records": 1, "dataset copies": 1, "quarantine records": 1,
                    "quarantine files (upload + reason)": 2, "quarantine notifications": 1, "dead letters": 0})


def crash_in_pipeline(cloud: LocalCloud, folder: Path, notifications: Callable[[], list[dict[str, Any]]]) -> Counted:
    """RegisterModelFunction dies after registering the package, RecordRunFunction after recording the run and
    notifying; Step Functions sees Lambda.Unknown each time."""
    cloud.put_model_config(MODEL, STORY_CONFIG | {"approval": "manual"})  # ends at RecordRegistered: no deploy
    crashes = (
        Injection("lambda:RegisterModelFunction", "crash_after", 1, "Register: Retry; registering is idempotent"),
        Injection("lambda:RecordRunFunction", "crash_after", 1, "RecordRegistered: Retry; recording is idempotent"),
    )
    with injected(cloud, crashes) as faults:
        cloud.upload(MODEL, write_csv(folder, "crash.csv", ROWS, seed=22))
        cloud.wait_idle(IDLE_TIMEOUT)
    return Counted("RegisterModelFunction and RecordRunFunction die after their side effects", faults,
                   _one_registered_run(cloud, notifications), ONE_REGISTERED_RUN)


def throttle_in_pipeline(cloud: LocalCloud, folder: Path,
                         notifications: Callable[[], list[dict[str, Any]]]) -> Counted:
    """DynamoDB throttles the Gate's ledger write past the SDK's own retries (the fault is raised above them),
    as a hot partition can: the run should back off and go on, as it does for a throttled Lambda."""
    cloud.put_model_config(MODEL, STORY_CONFIG | {"approval": "manual"})  # ends at RecordRegistered: no deploy
    cloud.upload(MODEL, write_csv(folder, "throttled.csv", ROWS, seed=23))
    deadline = time.monotonic() + IDLE_TIMEOUT
    while cloud.busy()["deliveries"] or not cloud.busy()["executions"]:  # ingest done, the run in flight
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not start")
        time.sleep(0.05)
    # Nothing but the Gate writes to DynamoDB before the run records its outcome.
    throttle = Injection("api:dynamodb:UpdateItem", "ProvisionedThroughputExceededException", 1,
                         "Gate: Retry with backoff")
    with injected(cloud, (throttle,)) as faults:
        cloud.wait_idle(IDLE_TIMEOUT)
    return Counted("DynamoDB throttles a pipeline function's write", faults,
                   _one_registered_run(cloud, notifications), ONE_REGISTERED_RUN)


ONE_REGISTERED_RUN = {"runs": 1, "runs SUCCEEDED and registered": 1, "model packages": 1,
                      "run.finished notifications": 1, "failure notifications": 0}


def _one_registered_run(cloud: LocalCloud, notifications: Callable[[], list[dict[str, Any]]]) -> dict[str, int]:
    report = build_report(cloud, [MODEL])
    packages = cloud.client("sagemaker").list_model_packages(ModelPackageGroupName=f"selfheal-{MODEL}")
    finished = [n for n in notifications() if n.get("event") == "run.finished"]
    return {"runs": len(report["runs"]),
            "runs SUCCEEDED and registered": sum((r["status"], r["decision"]) == ("SUCCEEDED", "registered")
                                                 for r in report["runs"]),
            "model packages": len(packages["ModelPackageSummaryList"]),
            "run.finished notifications": len(finished),
            "failure notifications": sum(n.get("decision") == "failed" for n in finished)}


