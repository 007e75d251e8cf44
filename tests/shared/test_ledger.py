"""The ledger: items as docs/architecture.md describes them, conditional where runs could collide."""

from decimal import Decimal

import pytest
from selfheal_shared import ledger, ledger_items
from selfheal_shared.errors import LedgerConflict


def record(model: str, stamp: str, key: str, rows: int = 100) -> dict:
    return ledger.record_dataset(model, key=key, version_id="v1", s3_uri=f"s3://b/datasets/{model}/{stamp}/f.csv",
                                 rows=rows, columns=4, bytes=2048, format="csv", recorded_at=stamp)


def test_a_dataset_is_recorded_once_under_its_recorded_at_and_key(cloud):
    first = record("churn", "20250101T000000000000Z", "incoming/churn/a.csv")
    again = record("churn", "20250101T000000000000Z", "incoming/churn/a.csv", rows=1)

    [item] = cloud.ledger("churn", "DATASET#")
    assert item["sk"] == "DATASET#20250101T000000000000Z#incoming/churn/a.csv"
    assert item["rows"] == Decimal(100) and again["rows"] == 100 == first["rows"]
    assert "consumed_by" not in item


def test_unconsumed_datasets_are_oldest_first_and_consumption_is_per_run(cloud):
    old = record("churn", "20250101T000000000000Z", "incoming/churn/a.csv")
    new = record("churn", "20250102T000000000000Z", "incoming/churn/b.csv")

    assert [d["key"] for d in ledger.unconsumed_datasets("churn")] == ["incoming/churn/a.csv", "incoming/churn/b.csv"]
    ledger.mark_consumed("churn", [old["sk"]], "run-1")
    ledger.mark_consumed("churn", [old["sk"]], "run-1")  # idempotent for the same run

    assert [d["key"] for d in ledger.unconsumed_datasets("churn")] == ["incoming/churn/b.csv"]
    assert len(ledger.list_datasets("churn")) == 2
    with pytest.raises(LedgerConflict):
        ledger.mark_consumed("churn", [old["sk"]], "run-2")
    assert new["sk"] > old["sk"]


def test_a_quarantined_upload_is_recorded_with_its_reason(cloud):
    ledger.record_quarantine("churn", key="incoming/churn/bad.csv", version_id="v9",
                             quarantine_key="quarantine/churn/20250101T000000000000Z/bad.csv",
                             reason="no data rows (header only)", check="rows", recorded_at="20250101T000000000000Z")

    [item] = ledger.list_quarantined("churn")
    assert (item["check"], item["reason"]) == ("rows", "no data rows (header only)")


def test_put_run_is_conditional_and_idempotent(cloud):
    run, created = ledger.put_run("churn", "churn-upload-abc", status="RUNNING", trigger="upload")
    again, created_again = ledger.put_run("churn", "churn-upload-abc", status="SOMETHING ELSE")

    assert (created, created_again) == (True, False)
    assert again["status"] == "RUNNING" == ledger.get_run("churn", "churn-upload-abc")["status"]


def test_update_run_converts_floats_and_leaves_none_alone_and_creates_a_missing_run(cloud):
    ledger.put_run("churn", "r1", status="RUNNING", started_at="2025-01-01T00:00:00.000000Z")
    ledger.update_run("churn", "r1", metrics={"auc": 0.91, "logloss": float("nan")}, error=None)
    ledger.update_run("churn", "by-hand", status="FAILED")

    run = ledger.get_run("churn", "r1")
    assert run["metrics"] == {"auc": 0.91, "logloss": None}
    assert isinstance(run["metrics"]["auc"], float) and "error" not in run
    assert ledger.get_run("churn", "by-hand")["status"] == "FAILED"
    assert [r["run_id"] for r in ledger.list_runs("churn")] == ["r1", "by-hand"]


def test_the_lock_admits_one_run_at_a_time(cloud):
    assert ledger.acquire_lock("churn", "run-1", ttl_seconds=3600)
    assert ledger.acquire_lock("churn", "run-1", ttl_seconds=3600)  # re-entrant for the holder
    assert not ledger.acquire_lock("churn", "run-2", ttl_seconds=3600)
    assert not ledger.release_lock("churn", "run-2")  # nobody releases another run's lock
    assert ledger.release_lock("churn", "run-1")
    assert ledger.acquire_lock("churn", "run-2", ttl_seconds=3600)
    assert ledger.acquire_lock("fraud", "run-3", ttl_seconds=3600)  # one lock per model


def test_a_stale_lock_can_be_taken(cloud):
    assert ledger.acquire_lock("churn", "run-1", ttl_seconds=-1)  # already expired

    assert ledger.acquire_lock("churn", "run-2", ttl_seconds=3600)
    assert ledger.get_lock("churn")["run_id"] == "run-2"


def test_a_lock_whose_holder_ended_can_be_stolen_by_name(cloud):
    ledger.acquire_lock("churn", "run-1", ttl_seconds=3600)

    assert not ledger.acquire_lock("churn", "run-2", ttl_seconds=3600, steal_from="run-9")
    assert ledger.acquire_lock("churn", "run-2", ttl_seconds=3600, steal_from="run-1")


def test_the_champion_is_stored_and_read_back(cloud):
    assert ledger.get_champion("churn") is None
    ledger.set_champion("churn", model_package_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package/x/1",
                        run_id="r1", model_data_url="s3://b/m.tar.gz", metrics={"auc": 0.9})

    champion = ledger.get_champion("churn")
    assert champion["metrics"] == {"auc": 0.9} and champion["run_id"] == "r1" and champion["since"]


def test_values_dynamodb_cannot_hold_are_refused_loudly():
    with pytest.raises(TypeError):
        ledger.to_dynamo({"when": object()})


def test_the_key_scheme_is_one_partition_per_model_with_the_kind_first_in_the_sort_key():
    assert ledger_items.item_key("churn", ledger_items.RUN, "churn-upload-1") == {"pk": "MODEL#churn",
                                                                                 "sk": "RUN#churn-upload-1"}
    assert ledger_items.sort_key(ledger_items.DATASET, "20250101T000000000000Z", "incoming/churn/a.csv") == (
        "DATASET#20250101T000000000000Z#incoming/churn/a.csv")
    assert ledger_items.sort_key(ledger_items.LOCK) == "LOCK"


def test_a_reader_of_the_table_gets_every_page_of_a_kind_as_plain_values(cloud):
    # Given three datasets of one model, one of another, and a run
    for name in ("a", "b", "c"):
        record("churn", f"2025010{ord(name) - 96}T000000000000Z", f"incoming/churn/{name}.csv")
    record("fraud", "20250101T000000000000Z", "incoming/fraud/a.csv")
    ledger.put_run("churn", "run-1", status=ledger.RUNNING)
    # When the tools read them a page of one item at a time
    by_query = list(ledger.query(cloud.table, "churn", ledger_items.DATASET, Limit=1))
    by_scan = list(ledger.scan(cloud.table, ledger_items.DATASET, Limit=1))
    every_kind = list(ledger.query(cloud.table, "churn", "", Limit=1))
    # Then nothing is lost between pages, and numbers come back as Python numbers
    assert [d["key"] for d in by_query] == [f"incoming/churn/{name}.csv" for name in "abc"]
    assert sorted(d["key"] for d in by_scan) == ["incoming/churn/a.csv", "incoming/churn/b.csv",
                                                 "incoming/churn/c.csv", "incoming/fraud/a.csv"]
    assert by_query[0]["rows"] == 100 and type(by_query[0]["rows"]) is int
    assert [item["sk"].split("#")[0] for item in every_kind] == ["DATASET"] * 3 + ["RUN"]
