"""IngestFunction: an upload becomes a dataset (and maybe a run) or is quarantined with its reason."""

import copy
import gzip

import pytest
from pydantic import ValidationError
from selfheal_bench.fixtures.aws import (
    BUCKET,
    CHURN,
    MAX_UPLOAD_BYTES,
    churn_csv,
    churn_parquet,
    emitted_metrics,
    event_files,
    load_event,
)
from selfheal_shared import aws, ledger

MODEL = "churn"


@pytest.fixture
def ingest(load_handler, cloud, lambda_context):
    """Deliver an event to IngestFunction as EventBridge would."""
    handler = load_handler("ingest").lambda_handler
    return lambda event: handler(event, lambda_context)


def uploaded(cloud, name: str, body: bytes, key: str | None = None) -> dict:
    """The sample event `name`, for `body` really uploaded (at `key`, or the event's own key)."""
    event = load_event("ingest", name)
    obj = event["detail"]["object"]
    obj.update(cloud.upload(key or obj["key"], body))
    return event


def assert_quarantined(cloud, result: dict, body: bytes, check: str, model: str = MODEL) -> None:
    """What a user checks: the original kept beside its reason, gone from incoming/, in the ledger,
    notified, and no run started."""
    assert result["status"] == "quarantined", result
    assert result["check"] == check, result
    kept = result["quarantine_key"]
    assert kept.startswith(f"quarantine/{model}/")
    assert cloud.s3.get_object(Bucket=BUCKET, Key=kept)["Body"].read() == body
    reason = cloud.read_json(f"{kept}.reason.json")
    assert reason["check"] == check and reason["reason"] == result["reason"]
    assert reason["key"] == result["key"] and reason["version_id"] == result["version_id"] and reason["time"]
    assert cloud.keys("incoming/") == []
    [item] = cloud.ledger(model, "QUARANTINE#")
    assert item["quarantine_key"] == kept and item["check"] == check and item["key"] == result["key"]
    [note] = [n for n in cloud.notifications() if n["event"] == "upload.quarantined"]
    assert note["message"]["check"] == check and note["message"]["quarantine_key"] == kept
    assert cloud.executions() == [] and cloud.ledger(model, "DATASET#") == []


# Every sample event in events/ingest/, run through the handler.


def test_valid_csv(cloud, ingest, capsys):
    cloud.put_config(MODEL, CHURN)
    body = churn_csv(60)

    result = ingest(uploaded(cloud, "valid_csv.json", body))

    assert result["status"] == "accepted" and result["started"] is True
    [dataset] = cloud.ledger(MODEL, "DATASET#")
    assert (dataset["rows"], dataset["columns"], dataset["bytes"], dataset["format"]) == (60, 4, len(body), "csv")
    assert dataset["consumed_by"] == result["run_id"]
    copy_key = dataset["s3_uri"].removeprefix(f"s3://{BUCKET}/")
    assert copy_key.startswith("datasets/churn/") and copy_key.endswith("/first.csv")
    assert cloud.s3.get_object(Bucket=BUCKET, Key=copy_key)["Body"].read() == body
    assert [e["name"] for e in cloud.executions()] == [result["run_id"]]
    assert cloud.keys("incoming/") == []
    assert emitted_metrics(capsys.readouterr().out)["UploadsAccepted"] == [1.0]


def test_parquet(cloud, ingest):
    cloud.put_config(MODEL, CHURN)

    result = ingest(uploaded(cloud, "parquet.json", churn_parquet(80)))

    assert result["status"] == "accepted" and result["started"] is True
    [dataset] = cloud.ledger(MODEL, "DATASET#")
    assert (dataset["rows"], dataset["columns"], dataset["format"]) == (80, 4, "parquet")


def test_duplicate_delivery(cloud, ingest):
    cloud.put_config(MODEL, CHURN)
    first_delivery = uploaded(cloud, "valid_csv.json", churn_csv(60))
    again = load_event("ingest", "duplicate_delivery.json")
    again["detail"]["object"] = copy.deepcopy(first_delivery["detail"]["object"])

    first, second = ingest(first_delivery), ingest(again)

    assert second == first
    assert len(cloud.executions()) == 1 and len(cloud.ledger(MODEL, "DATASET#")) == 1


def test_bad_csv(cloud, ingest):
    cloud.put_config(MODEL, CHURN)
    body = churn_csv(60).replace(b"\n3,", b'\n=HYPERLINK("http://evil.example"),', 1)

    result = ingest(uploaded(cloud, "bad_csv.json", body))

    assert_quarantined(cloud, result, body, "formula")


def test_unknown_model(cloud, ingest, capsys):
    body = churn_csv(60)

    result = ingest(uploaded(cloud, "unknown_model.json", body))

    assert_quarantined(cloud, result, body, "model", model="fraud")
    assert "no configuration at config/fraud.yaml" in result["reason"]
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["UploadsQuarantined"] == [1.0] and metrics["check"] == "model"


@pytest.mark.parametrize("name", ["outside_incoming.json", "other_bucket.json"])
def test_events_that_are_not_uploads_are_ignored(cloud, ingest, name):
    cloud.put_config(MODEL, CHURN)

    result = ingest(load_event("ingest", name))

    assert result["status"] == "ignored" and result["started"] is False
    assert cloud.ledger(MODEL) == [] and cloud.notifications() == [] and cloud.executions() == []


def test_every_sample_event_has_a_test():
    covered = {"valid_csv.json", "parquet.json", "duplicate_delivery.json", "bad_csv.json", "unknown_model.json",
               "outside_incoming.json", "other_bucket.json"}
    assert set(event_files("ingest")) == covered


# Hostile and broken uploads (issue 5): each quarantined with its reason, the original kept.

HEADER = b"tenure,monthly_charges,plan,churned\n"


def rows_with(line: bytes, count: int = 60) -> bytes:
    return churn_csv(count - 1) + line + b"\n"


@pytest.mark.parametrize(("case", "body", "check"), [
    ("empty file", b"", "empty"),
    ("header only", HEADER, "rows"),
    ("too few rows", churn_csv(10), "rows"),
    ("binary bytes", bytes(range(256)) * 4, "encoding"),
    ("latin-1 text", HEADER + "3,20.5,caf\xe9,yes\n".encode("latin-1") * 60, "encoding"),
    ("gzip named csv", b"\x1f\x8b\x08\x00" + b"\x00" * 100, "format"),
    ("parquet named csv", churn_parquet(60), "format"),
    ("semicolons", churn_csv(60).replace(b",", b";"), "delimiter"),
    ("ragged row", rows_with(b"1,2,basic,yes,extra"), "ragged"),
    ("one line of 1.5 MB", b"x" * (3 * 512 * 1024), "line_length"),
    ("missing target", HEADER.replace(b"churned", b"left") + b"1,2,basic,yes\n" * 60, "header"),
    ("duplicate columns", HEADER.replace(b"plan", b"tenure") + b"1,2,3,yes\n" * 60, "header"),
    ("blank column name", HEADER.replace(b"plan", b" ") + b"1,2,3,yes\n" * 60, "header"),
    ("target all empty", HEADER + b"1,2,basic,\n" * 60, "target"),
    ("target all NA", HEADER + b"1,2,basic,NA\n" * 60, "target"),
    ("one class", churn_csv(60, classes=("yes",)), "classes"),
    ("three classes for binary", churn_csv(60, classes=("a", "b", "c")), "classes"),
    ("formula =", rows_with(b'1,2,=cmd|"/c calc"!A1,yes'), "formula"),
    ("formula @", rows_with(b"1,2,@SUM(A1:A9),yes"), "formula"),
    ("formula +", rows_with(b"1,2,+cmd,yes"), "formula"),
    ("formula -", rows_with(b"1,2,-2+3,yes"), "formula"),
    ("unbalanced quote", rows_with(b'1,2,"basic,yes\n4,5,pro,no'), "csv"),
])
def test_a_bad_csv_upload_is_quarantined_with_its_reason(cloud, ingest, case, body, check):
    cloud.put_config(MODEL, CHURN)

    result = ingest(uploaded(cloud, "valid_csv.json", body))

    assert_quarantined(cloud, result, body, check)


def test_negative_numbers_and_missing_values_are_not_mistaken_for_problems(cloud, ingest):
    cloud.put_config(MODEL, CHURN)
    body = churn_csv(59) + b"-3,-20.5,,no\r\n"

    assert ingest(uploaded(cloud, "valid_csv.json", body))["status"] == "accepted"


def test_an_object_over_the_limit_is_quarantined_without_being_read(cloud, ingest):
    cloud.put_config(MODEL, CHURN)
    body = b"x" * (MAX_UPLOAD_BYTES + 1)
    event = uploaded(cloud, "valid_csv.json", body)
    reads = []
    aws.client("s3").meta.events.register("before-call.s3.GetObject",
                                  lambda params, **_: reads.append(params["url_path"]))

    result = ingest(event)

    assert [path for path in reads if "incoming/" in path] == []
    assert_quarantined(cloud, result, body, "size")


def test_the_models_own_max_bytes_is_stricter_than_the_deployments(cloud, ingest):
    cloud.put_config(MODEL, {**CHURN, "validation": {"max_bytes": 100}})
    body = churn_csv(60)

    assert_quarantined(cloud, ingest(uploaded(cloud, "valid_csv.json", body)), body, "size")


def test_a_header_with_stray_spaces_is_quarantined_with_a_hint(cloud, ingest):
    cloud.put_config(MODEL, CHURN)
    body = churn_csv(60).replace(b",churned\n", b", churned\n", 1)

    result = ingest(uploaded(cloud, "valid_csv.json", body))

    assert_quarantined(cloud, result, body, "header")
    assert result["reason"] == ("the target column 'churned' is not in the header "
                                "(it has ' churned': remove the spaces around the name)")


# Gzip-compressed CSV (.csv.gz): read as a stream, checked like its CSV, kept compressed.


def gz_event(cloud, body: bytes) -> dict:
    return uploaded(cloud, "valid_csv.json", body, key="incoming/churn/first.csv.gz")


def test_a_gzip_csv_is_accepted_as_its_csv_and_kept_compressed(cloud, ingest):
    cloud.put_config(MODEL, CHURN)
    # Two gzip members, as `cat a.gz b.gz` makes: one stream to gunzip
    text = churn_csv(60)
    body = gzip.compress(text[:500]) + gzip.compress(text[500:])

    result = ingest(gz_event(cloud, body))

    assert result["status"] == "accepted", result
    [dataset] = cloud.ledger(MODEL, "DATASET#")
    assert (dataset["rows"], dataset["columns"], dataset["format"]) == (60, 4, "csv")
    copy_key = dataset["s3_uri"].removeprefix(f"s3://{BUCKET}/")
    assert copy_key.endswith("/first.csv.gz")
    assert gzip.decompress(cloud.s3.get_object(Bucket=BUCKET, Key=copy_key)["Body"].read()) == text


# mtime=0: the bytes (and so the test ids) must not depend on the second each xdist worker collects them in
@pytest.mark.parametrize(("case", "body", "check"), [
    ("formula inside", gzip.compress(rows_with(b"1,2,=cmd,yes"), mtime=0), "formula"),
    ("binary inside", gzip.compress(bytes(range(256)) * 4, mtime=0), "encoding"),
    ("truncated", gzip.compress(churn_csv(60), mtime=0)[:-30], "format"),
    ("not gzip", churn_csv(60), "format"),
    ("expands past the limit", gzip.compress(churn_csv(60) + b"1,2,basic,yes\n" * 20_000, mtime=0), "size"),
])
def test_a_bad_gzip_csv_is_quarantined_with_its_reason(cloud, ingest, case, body, check):
    cloud.put_config(MODEL, {**CHURN, "validation": {"max_bytes": 100_000}})
    assert len(body) < 100_000

    result = ingest(gz_event(cloud, body))

    assert_quarantined(cloud, result, body, check)


@pytest.mark.parametrize(("case", "body", "key", "check"), [
    ("corrupt parquet", b"PAR1" + b"\xff" * 64 + b"\x10\x00\x00\x00PAR1", "incoming/churn/x.parquet", "parquet"),
    ("csv named parquet", churn_csv(60), "incoming/churn/x.parquet", "format"),
    ("parquet without target", churn_parquet(60).replace(b"churned", b"churnex"), "incoming/churn/x.parquet",
     "header"),
    ("parquet one class", churn_parquet(60, classes=("1",)), "incoming/churn/x.parquet", None),
    ("spreadsheet", b"PK\x03\x04" + b"\x00" * 64, "incoming/churn/x.xlsx", "format"),
    ("dot-dot", churn_csv(60), "incoming/churn/..data.csv", "key"),
    ("control character", churn_csv(60), "incoming/churn/bad\x07name.csv", "key"),
    ("very long name", churn_csv(60), "incoming/churn/" + "n" * 300 + ".csv", "key"),
    ("sub-folder", churn_csv(60), "incoming/churn/2025/data.csv", "key"),
])
def test_bad_names_and_formats_are_quarantined(cloud, ingest, case, body, key, check):
    cloud.put_config(MODEL, CHURN)

    result = ingest(uploaded(cloud, "valid_csv.json", body, key=key))

    if check is None:  # string statistics may be truncated: single-class Parquet is left to Preprocess
        assert result["status"] == "accepted"
        return
    assert_quarantined(cloud, result, body, check)
    if case in {"dot-dot", "control character", "very long name"}:  # filed under a name derived from the key
        assert result["quarantine_key"].rpartition("/")[2].startswith("upload-")


def test_an_upload_for_a_model_name_sagemaker_refuses_is_filed_under_invalid(cloud, ingest):
    body = churn_csv(60)

    result = ingest(uploaded(cloud, "valid_csv.json", body, key="incoming/Churn_V2/data.csv"))

    assert_quarantined(cloud, result, body, "key", model="_invalid")


def test_an_invalid_configuration_quarantines_with_the_field_named(cloud, ingest):
    cloud.put_config(MODEL, {**CHURN, "metric": {"name": "rmse", "threshold": 0.5}})
    body = churn_csv(60)

    result = ingest(uploaded(cloud, "valid_csv.json", body))

    assert_quarantined(cloud, result, body, "config")
    assert "metric.name" in result["reason"]


def test_a_parquet_upload_with_a_numeric_single_class_target_is_quarantined(cloud, ingest):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    cloud.put_config(MODEL, CHURN)
    buffer = io.BytesIO()
    pq.write_table(pa.table({"tenure": list(range(60)), "churned": [1] * 60}), buffer)

    result = ingest(uploaded(cloud, "parquet.json", buffer.getvalue()))

    assert_quarantined(cloud, result, buffer.getvalue(), "classes")


@pytest.mark.parametrize(("path", "value"), [
    (("source",), "aws.ec2"),
    (("detail-type",), "Object Deleted"),
    (("detail",), "{}"),
    (("detail", "object"), None),
    (("detail", "object", "key"), ""),
    (("detail", "object", "size"), -1),
    (("detail", "bucket"), {"title": "x"}),
])
def test_a_malformed_event_is_a_clear_error_and_touches_nothing(cloud, ingest, path, value):
    event = load_event("ingest", "valid_csv.json")
    target = event
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value

    with pytest.raises(ValidationError):
        ingest(event)
    assert cloud.ledger(MODEL) == [] and cloud.notifications() == []


# The trigger policy and the lock, through uploads.


def test_min_new_rows_records_the_dataset_without_starting_a_run(cloud, ingest):
    cloud.put_config(MODEL, {**CHURN, "trigger": {"mode": "min_new_rows", "min_new_rows": 100}})

    result = ingest(uploaded(cloud, "valid_csv.json", churn_csv(60)))

    assert result["status"] == "accepted" and result["started"] is False and "min_new_rows" in result["reason"]
    assert cloud.executions() == []
    assert len(ledger.unconsumed_datasets(MODEL)) == 1


def test_an_upload_during_a_run_is_recorded_and_waits(cloud, ingest):
    cloud.put_config(MODEL, CHURN)
    first = ingest(uploaded(cloud, "valid_csv.json", churn_csv(60)))

    second = ingest(uploaded(cloud, "parquet.json", churn_parquet(60)))

    assert first["started"] and second["status"] == "accepted" and not second["started"]
    assert "in flight" in second["reason"]
    assert len(cloud.executions()) == 1
    assert [d["key"] for d in ledger.unconsumed_datasets(MODEL)] == ["incoming/churn/second.parquet"]


@pytest.mark.parametrize("crash_at", ["states.StartExecution", "s3.DeleteObject", "sns.Publish"])
def test_a_crash_between_steps_is_retried_without_doing_anything_twice(cloud, ingest, crash_at):
    cloud.put_config(MODEL, CHURN)
    good = uploaded(cloud, "valid_csv.json", churn_csv(60))
    bad = uploaded(cloud, "bad_csv.json", HEADER)
    failures = iter([RuntimeError("the Lambda died here")])

    def die_once(**kwargs):
        failure = next(failures, None)
        if failure:
            raise failure

    service, operation = crash_at.split(".")
    client = aws.client({"states": "stepfunctions"}.get(service, service))
    client.meta.events.register(f"before-call.{service}.{operation}", die_once)
    results = []
    for event in (good, bad):
        try:
            results.append(ingest(event))
        except RuntimeError:
            results.append(ingest(event))  # EventBridge retries the same event

    assert [r["status"] for r in results] == ["accepted", "quarantined"]
    assert len(cloud.ledger(MODEL, "DATASET#")) == 1 and len(cloud.keys("datasets/")) == 1
    assert len(cloud.ledger(MODEL, "QUARANTINE#")) == 1 and len(cloud.keys("quarantine/")) == 2
    assert len(cloud.executions()) == 1 and len(cloud.notifications()) == 1
    assert cloud.keys("incoming/") == []


def test_a_newer_upload_of_the_same_key_stays_in_incoming(cloud, ingest):
    cloud.put_config(MODEL, {**CHURN, "trigger": {"mode": "min_new_rows", "min_new_rows": 10_000}})
    first = uploaded(cloud, "valid_csv.json", churn_csv(60))
    cloud.upload("incoming/churn/first.csv", churn_csv(70))

    ingest(first)

    assert cloud.keys("incoming/") == ["incoming/churn/first.csv"]
    assert cloud.s3.get_object(Bucket=BUCKET, Key="incoming/churn/first.csv")["Body"].read() == churn_csv(70)
