"""Ingest's reads of an upload: its own ranged reads against Powertools' S3 streaming object (issue 11 asks for the
streaming object if it costs nothing).

Both check the same Parquet upload with the same code (upload_checks.check_parquet: the magic at both ends, then the
footer), each through its own read: ingest's `_read_range` asks S3 for exactly the bytes it reads; `S3Object` seeks,
and each seek re-opens a GET from there to the end of the object (Range: bytes=N-) and closes it after the read.
Requests and the bytes S3 is asked to send are counted on the client (moto, in-process); the import cost is what
`python -X importtime` reports for the streaming package imported after ingest's handler (what is not already
loaded). CSV uploads are one streamed GET either way, and ingest's gunzip bounds what it inflates where Powertools'
GzipTransform does not, so only Parquet is compared.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from collections import Counter
from typing import Any

from common import PYTHON, ROOT, Figure, Goal, Sizes, median, timed
from moto import mock_aws
from selfheal_bench.code_roots import import_from
from selfheal_bench.datagen import CHURN_CONFIG, churn_frame

INGEST = ROOT / "functions" / "ingest"
BUCKET = "bench-ingest-reads"
COSTS_NOTHING = Goal("ratio", "<=", 1.0)  # the streaming object against ingest's own reads


class S3Traffic:
    """Every S3 call a client makes, by operation, and the bytes S3 was asked to send (each GET's Content-Length)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.bytes_asked = 0
        client.meta.events.register("after-call.s3", self._count)

    def _count(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls[model.name] += 1
        if model.name == "GetObject":
            self.bytes_asked += int(parsed.get("ContentLength", 0))


def measure(sizes: Sizes) -> list[Figure]:
    rows = 200_000 if not sizes.quick else 20_000
    env = {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_SESSION_TOKEN": "bench"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        with mock_aws():
            ours, streaming, size = _checks(rows, sizes.repeats)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    data = {"rows": rows, "object_bytes": size}
    streaming_import, handler_import = _import_ms(sizes.repeats)
    return [
        Figure("ingest Parquet check, bytes asked of S3: Powertools S3Object (value) vs ranged reads (floor)", "B",
               COSTS_NOTHING, "ingest's ranged reads", value=streaming["bytes"], floor=ours["bytes"], runs=1,
               data=data, notes=[f"{rows:,}-row Parquet upload of {size / 1e6:.1f} MB; each seek of S3Object opens "
                                 "a GET to the end of the object"]),
        Figure("ingest Parquet check, S3 requests: Powertools S3Object (value) vs ranged reads (floor)", "requests",
               COSTS_NOTHING, "ingest's ranged reads", value=sum(streaming["calls"].values()),
               floor=sum(ours["calls"].values()), runs=1,
               data={"streaming": dict(streaming["calls"]), "ranged": dict(ours["calls"])},
               notes=["S3Object asks for the size with a HeadObject of its own; ingest has the HEAD already"]),
        Figure("ingest Parquet check in moto: S3Object (value) vs ranged reads (floor)", "ms", None,
               "ingest's ranged reads", value=streaming["ms"], floor=ours["ms"], runs=sizes.repeats),
        Figure("ingest cold start: what importing Powertools' streaming package adds", "ms", None,
               "ingest's handler import (app)", value=streaming_import, floor=handler_import, runs=sizes.repeats,
               notes=["-X importtime's cumulative times: the package, imported after ingest's handler"]),
    ]


def _checks(rows: int, repeats: int) -> tuple[dict[str, Any], dict[str, Any], int]:
    from aws_lambda_powertools.utilities.streaming import S3Object
    from selfheal_shared import aws
    from selfheal_shared.config import load_config

    ingest = import_from(INGEST, "ingest.py", "bench_ingest")
    checks = import_from(INGEST, "upload_checks.py", "bench_upload_checks")
    config = load_config(CHURN_CONFIG, fmt="json")
    body = io.BytesIO()
    churn_frame(rows, seed=3).to_parquet(body, index=False)
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    version = s3.put_object(Bucket=BUCKET, Key="incoming/churn/a.parquet", Body=body.getvalue()).get("VersionId")
    upload = ingest.Upload(bucket=BUCKET, key="incoming/churn/a.parquet", version_id=version)
    size = len(body.getvalue())

    def ranged() -> Any:
        return checks.check_parquet(lambda start, length: ingest._read_range(upload, start, length), size, config)

    def streamed() -> Any:
        with S3Object(BUCKET, upload.key, version_id=version, boto3_client=s3) as obj:
            return checks.check_parquet(lambda start, length: _seek_read(obj, start, length), obj.size, config)

    results = {}
    for name, check in (("ranged", ranged), ("streaming", streamed)):
        traffic = S3Traffic(s3)
        check()
        counted = {"calls": traffic.calls, "bytes": traffic.bytes_asked}
        s3.meta.events.unregister("after-call.s3", traffic._count)
        counted["ms"] = median([timed(check)[0] * 1000 for _ in range(repeats)])
        results[name] = counted
    return results["ranged"], results["streaming"], size


def _seek_read(obj: Any, start: int, length: int) -> bytes:
    obj.seek(start)
    return obj.read(length)


def _import_ms(repeats: int) -> tuple[float, float]:
    """(the streaming package's import, the handler's import), in ms: medians of -X importtime's cumulative times."""
    script = "import app; import aws_lambda_powertools.utilities.streaming"
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ} | {
        "PYTHONPATH": os.pathsep.join([str(INGEST), str(ROOT / "layers" / "shared")]),
        "AWS_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "bench", "LEDGER_TABLE": "bench",
        "DATA_BUCKET": "bench", "TOPIC_ARN": "bench"}
    streaming, handler = [], []
    for _ in range(repeats):
        done = subprocess.run([PYTHON, "-X", "importtime", "-c", script], env=env, cwd=INGEST, capture_output=True,  # noqa: S603
                              text=True, timeout=120, check=True)
        streaming.append(_cumulative_ms(done.stderr, "aws_lambda_powertools.utilities.streaming"))
        handler.append(_cumulative_ms(done.stderr, "app"))
    return median(streaming), median(handler)


def _cumulative_ms(importtime: str, module: str) -> float:
    """A top-level module's cumulative import time from -X importtime's output, in ms."""
    found = re.findall(rf"import time:\s+\d+ \|\s+(\d+) \| {re.escape(module)}$", importtime, re.M)
    return int(found[-1]) / 1000
