"""Hostile input: bad uploads, keys, events and requests, each refused with a reason."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datagen import churn_frame
from ..localcloud import LocalCloud
from ..localcloud.lambdas import FunctionError
from ..report import build_report, endpoint_name, ledger_items
from .core import IDLE_TIMEOUT, MB, MODEL, STORY_CONFIG, invoke_status, request_rows, sha256, write_csv

# -- hostile input ---------------------------------------------------------------------------------------------


@dataclass
class InputOutcome:
    """One hostile input: what should happen to it, and what did."""

    name: str
    expected: str
    observed: str
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"input": self.name, "expected": self.expected, "observed": self.observed, "held": not self.problem,
                "problem": self.problem}


def hostile_payloads(cloud: LocalCloud, model: str) -> list[InputOutcome]:
    """Bad requests to the real endpoint: each a client error (4xx), never a server error; the endpoint
    answers a good request afterwards. (Bytes that are not UTF-8 cannot pass moto's request parsing;
    tests/ml/test_inference.py sends them to the inference code directly.)"""
    runtime, endpoint = cloud.client("sagemaker-runtime"), endpoint_name(model)
    good = request_rows(1, seed=5, shift=0.0)[0]
    payloads: dict[str, tuple[bytes, str, str]] = {
        "empty": (b"", "text/csv", "text/csv"),
        "blank lines": (b"\n \n", "text/csv", "text/csv"),
        "too few columns": (b"1,2,3", "text/csv", "text/csv"),
        "too many columns": (good + b",1,2", "text/csv", "text/csv"),
        "not a number": (b"ten," + good.split(b",", 1)[1], "text/csv", "text/csv"),
        "too large (7 MB)": ((good + b"\n") * (7 * MB // len(good) + 1), "text/csv", "text/csv"),
        "JSON not JSON": (b'{"instances": [[1, 2', "application/json", "application/json"),
        "JSON wrong shape": (b'"hello"', "application/json", "application/json"),
        "JSON missing features": (b'[{"age": 30}]', "application/json", "application/json"),
        "unsupported content type": (good, "application/x-npy", "text/csv"),
        "unsupported accept": (good, "text/csv", "image/png"),
    }
    outcomes = []
    for name, (body, content_type, accept) in payloads.items():
        status = invoke_status(runtime, endpoint, body, content_type, accept)
        ok = 400 <= status < 500
        outcomes.append(InputOutcome(f"inference: {name}", "client error (4xx)", str(status),
                                     None if ok else f"answered {status}, not a client error"))
    status = invoke_status(runtime, endpoint, good)
    outcomes.append(InputOutcome("inference: a good row after all that", "answered (200)", str(status),
                                 None if status == 200 else f"answered {status}"))
    return outcomes


@dataclass(frozen=True)
class Upload:
    name: str
    key: str
    part: bytes
    check: str  # the quarantine check that must reject it
    repeat: int = 1  # the body is `part` repeated: large bodies are only built when uploaded

    @property
    def body(self) -> bytes:
        return self.part * self.repeat


def _labelled(table: bytes, label: bytes) -> bytes:
    """The table with every row's target (the last column) set to `label`."""
    header, *rows = table.splitlines()
    return b"\n".join([header, *(row.rsplit(b",", 1)[0] + b"," + label for row in rows)]) + b"\n"


def _with_cell(table: bytes, cell: bytes) -> bytes:
    """The table with the first cell of its second data row replaced."""
    lines = table.splitlines()
    lines[2] = cell + b"," + lines[2].split(b",", 1)[1]
    return b"\n".join(lines) + b"\n"


def hostile_upload_catalogue() -> list[Upload]:
    good = churn_frame(80, seed=3).to_csv(index=False).encode()
    header = good.split(b"\n", 1)[0]
    formula = {"=": b'=HYPERLINK("http://x")', "+": b"+cmd", "-": b"-2+3", "@": b"@SUM(A1)"}
    churn = "incoming/churn/"
    return [
        Upload("empty file", churn + "empty.csv", b"", "empty"),
        Upload("header only", churn + "header.csv", header + b"\n", "rows"),
        Upload("binary bytes", churn + "binary.csv", bytes(range(256)) * 8, "encoding"),
        Upload("not UTF-8", churn + "latin1.csv", header + b"\n" + "caf\xe9,".encode("latin-1") * 10, "encoding"),
        Upload("wrong delimiter", churn + "semicolons.csv", good.replace(b",", b";"), "delimiter"),
        Upload("ragged rows", churn + "ragged.csv", good + b"1,2,3\n", "ragged"),
        Upload("a single line of 100 MB", churn + "long-line.csv", b"x", "line_length", repeat=100 * MB),
        Upload("missing target", churn + "no-target.csv", good.replace(b"churned", b"left", 1), "header"),
        Upload("target all empty", churn + "no-labels.csv", _labelled(good, b""), "target"),
        Upload("one class only", churn + "one-class.csv", _labelled(good, b"1"), "classes"),
        Upload("too few rows", churn + "few.csv", b"\n".join(good.splitlines()[:5]) + b"\n", "rows"),
        Upload("duplicate column names", churn + "dup-columns.csv", good.replace(b",age,", b",plan,", 1), "header"),
        Upload("blank column name", churn + "blank-column.csv", good.replace(b",age,", b", ,", 1), "header"),
        *[Upload(f"formula cell {symbol}", churn + f"formula-{i}.csv", _with_cell(good, cell), "formula")
          for i, (symbol, cell) in enumerate(formula.items())],
        Upload("key with ..", churn + "..data.csv", good, "key"),
        Upload("key with a control character", churn + "bad\x07name.csv", good, "key"),
        Upload("key with a very long name", churn + "n" * 300 + ".csv", good, "key"),
        Upload("key in a sub-folder", churn + "2025/data.csv", good, "key"),
        Upload("unknown model", "incoming/nobody/data.csv", good, "model"),
        Upload("config with a wrong type", "incoming/cfg-type/data.csv", good, "config"),
        Upload("config with an unknown field", "incoming/cfg-field/data.csv", good, "config"),
        Upload("config with an out-of-range value", "incoming/cfg-range/data.csv", good, "config"),
        Upload(OVERSIZE, f"incoming/{OVERSIZE_MODEL}/big.csv", good, "size", repeat=MB // len(good) + 1),
    ]


# Configurations that are refused, and the field the refusal must name.
BAD_CONFIGS = {
    "cfg-type": (STORY_CONFIG | {"metric": {"name": "auc", "threshold": "high"}}, "metric.threshold"),
    "cfg-field": (STORY_CONFIG | {"colour": "blue"}, "colour"),
    "cfg-range": (STORY_CONFIG | {"deploy": {"canary_percent": 80}}, "deploy.canary_percent"),
}
OVERSIZE_MODEL = "small"  # a model whose uploads may be 1 MB at most
OVERSIZE = "over the size limit (checked without reading it)"
OUTSIDE = "upload outside incoming/"


@dataclass
class Catalogue:
    outcomes: list[InputOutcome]
    untouched: list[str]  # what "nothing else disturbed" found disturbed (empty when nothing was)

    def problems(self) -> list[str]:
        return [f"{o.name}: {o.problem}" for o in self.outcomes if o.problem] + self.untouched


def hostile_uploads(cloud: LocalCloud, folder: Path) -> Catalogue:
    """Every bad upload is quarantined with its reason and the original kept, and nothing else moves: a
    good dataset recorded before stays as it was, and no run starts."""
    quiet = STORY_CONFIG | {"trigger": {"mode": "min_new_rows", "min_new_rows": 10**9}}  # record, never train
    cloud.put_model_config(MODEL, quiet)
    cloud.put_model_config(OVERSIZE_MODEL, quiet | {"validation": {"min_rows": 50, "max_bytes": MB}})
    for model, (config, _) in BAD_CONFIGS.items():
        cloud.put_model_config(model, config)
    cloud.upload(MODEL, write_csv(folder, "good.csv", 200, seed=9))
    cloud.wait_idle(IDLE_TIMEOUT)
    (good,) = ledger_items(cloud, MODEL, "DATASET#")

    s3 = cloud.client("s3")
    catalogue = hostile_upload_catalogue()
    for upload in catalogue:
        s3.put_object(Bucket=cloud.bucket, Key=upload.key, Body=upload.body)
    outside = "uploads/churn/data.csv"  # a mistyped prefix: the IngestRule only matches incoming/
    s3.put_object(Bucket=cloud.bucket, Key=outside, Body=b"a,churned\n1,0\n")
    cloud.wait_idle(IDLE_TIMEOUT)

    outcomes = [_quarantine_outcome(cloud, upload) for upload in catalogue]
    oversize, key = next((o, u.key) for o, u in zip(outcomes, catalogue, strict=True) if u.name == OVERSIZE)
    read = [c for c in cloud.audit.calls if c.operation == "GetObject" and c.params.get("Key") == key]
    if read:
        oversize.problem = f"read {len(read)} time(s) before it was refused"
    kept = s3.get_object(Bucket=cloud.bucket, Key=outside)["Body"].read() == b"a,churned\n1,0\n"
    outcomes.append(InputOutcome(OUTSIDE, "ignored, left where it is", "left alone" if kept else "moved or changed",
                                 None if kept else "touched"))
    untouched = []
    if ledger_items(cloud, MODEL, "DATASET#") != [good]:
        untouched.append("the good dataset recorded before changed")
    if build_report(cloud, [MODEL])["runs"]:
        untouched.append("a run started")
    if cloud.dead_letters:
        untouched.append(f"{len(cloud.dead_letters)} deliveries ended in the dead-letter queue")
    leftover = s3.list_objects_v2(Bucket=cloud.bucket, Prefix="incoming/").get("KeyCount", 0)
    if leftover:
        untouched.append(f"{leftover} uploads left in incoming/")
    return Catalogue(outcomes, untouched)


def _quarantine_outcome(cloud: LocalCloud, upload: Upload) -> InputOutcome:
    model = upload.key.split("/")[1]
    items = [i for m in {model, "_invalid"} for i in ledger_items(cloud, m, "QUARANTINE#") if i["key"] == upload.key]
    expected = f"quarantined ({upload.check})"
    if len(items) != 1:
        return InputOutcome(upload.name, expected, f"{len(items)} quarantine records", "not quarantined exactly once")
    item = items[0]
    observed = f"quarantined ({item['check']}): {item['reason']}"
    s3 = cloud.client("s3")
    kept = s3.get_object(Bucket=cloud.bucket, Key=item["quarantine_key"])["Body"].read()
    reason = json.loads(s3.get_object(Bucket=cloud.bucket, Key=item["quarantine_key"] + ".reason.json")["Body"].read())
    problem = None
    if item["check"] != upload.check:
        problem = f"rejected by the {item['check']} check, expected {upload.check}"
    elif sha256(kept) != sha256(upload.body):
        problem = "the quarantined copy differs from the original"
    elif reason["reason"] != item["reason"] or not item["reason"]:
        problem = "the reason document does not give the reason"
    elif model in BAD_CONFIGS and BAD_CONFIGS[model][1] not in item["reason"]:
        problem = f"the reason does not name the bad field {BAD_CONFIGS[model][1]}"
    return InputOutcome(upload.name, expected, observed, problem)


def hostile_events(cloud: LocalCloud) -> list[InputOutcome]:
    """Events IngestFunction must not act on: another bucket's, malformed ones, and a lookalike from another
    source on the bus. Each is refused with a clear error or ignored with the reason, touching nothing."""
    valid = _s3_event(cloud, cloud.bucket, "incoming/churn/data.csv")
    cases: dict[str, tuple[Any, str]] = {
        "an object in another bucket": (_s3_event(cloud, "someone-elses-bucket", "incoming/churn/data.csv"), "ignored"),
        "a key outside incoming/": (_s3_event(cloud, cloud.bucket, "config/churn.yaml"), "ignored"),
        "an event without detail": ({k: v for k, v in valid.items() if k != "detail"}, "ValidationError"),
        "another source": (valid | {"source": "aws.ec2"}, "ValidationError"),
        "another detail-type": (valid | {"detail-type": "Object Deleted"}, "ValidationError"),
        "an empty key": (_s3_event(cloud, cloud.bucket, ""), "ValidationError"),
        "a negative size": (_s3_event(cloud, cloud.bucket, "incoming/churn/data.csv", size=-1), "ValidationError"),
        "not an object": (["incoming/churn/data.csv"], "ValidationError"),
    }
    outcomes = []
    for name, (event, expected) in cases.items():
        try:
            observed = cloud.invoke("IngestFunction", event)["status"]
        except FunctionError as error:
            observed = error.error_type
        outcomes.append(InputOutcome(f"event: {name}", expected, observed,
                                     None if observed == expected else f"{observed}, expected {expected}"))
    before = len(cloud.delivered)
    cloud.client("events").put_events(Entries=[{"Source": "lookalike.app", "DetailType": "Object Created",
                                                "Detail": json.dumps(valid["detail"])}])
    delivered = f"delivered {len(cloud.delivered) - before} time(s)"
    outcomes.append(InputOutcome("event: an Object Created lookalike from another source", "not delivered", delivered,
                                 delivered if len(cloud.delivered) > before else None))
    written = [item["pk"] for item in cloud.resource("dynamodb").Table(cloud.ledger_table).scan()["Items"]
               if item["pk"].startswith("MODEL#")]
    if written:
        outcomes.append(InputOutcome("events: the ledger afterwards", "no model items", f"{len(written)} items",
                                     "the ledger was written"))
    return outcomes


def _s3_event(cloud: LocalCloud, bucket: str, key: str, size: int = 100) -> dict[str, Any]:
    """The sample upload event (events/ingest/valid_csv.json) for another bucket, key or size."""
    event = json.loads((cloud.root / "events" / "ingest" / "valid_csv.json").read_text())
    event["resources"] = [f"arn:aws:s3:::{bucket}"]
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"] |= {"key": key, "size": size}
    return event


