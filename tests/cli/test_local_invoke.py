"""`selfheal local invoke`, the Docker-free `sam local invoke`, on every sample event: each meets the account
it was written for (selfheal_bench.samples puts it there) and answers as it would on AWS: the success cases
succeed, the event meant to be refused is refused with its error's name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from selfheal_bench.localcloud.template import Template
from selfheal_bench.samples import WORLDS

from selfheal.cli import main

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted(ROOT.glob("events/*/*.json"))
IGNORED_AUTO = "ignored: TrainingPipeline deploys the packages of auto-approved models"
OTHER_BUCKET = "object in bucket 'another-team-data-123456789012', not the data bucket"

# What each sample event must answer: the exit code and fields of the function's answer.
EXPECTED: dict[str, tuple[int, dict]] = {
    "approval/approved_by_hand.json": (0, {"model": "churn", "started": True}),
    "approval/registered_approved.json": (0, {"started": False, "reason": IGNORED_AUTO}),
    "evaluate_gate/pass.json": (0, {"passed": True}),
    "evaluate_gate/fail_threshold.json": (0, {"passed": False}),
    "evaluate_gate/fail_champion.json": (0, {"passed": False}),
    "evaluate_gate/missing_metric.json": (0, {"passed": False}),
    "ingest/valid_csv.json": (0, {"status": "accepted", "started": True}),
    "ingest/duplicate_delivery.json": (0, {"status": "accepted"}),
    "ingest/parquet.json": (0, {"status": "accepted", "started": True}),
    "ingest/bad_csv.json": (0, {"status": "quarantined", "check": "formula"}),
    "ingest/unknown_model.json": (0, {"status": "quarantined", "check": "model"}),
    "ingest/outside_incoming.json": (0, {"status": "ignored", "reason": "key outside incoming/"}),
    "ingest/other_bucket.json": (0, {"status": "ignored", "reason": OTHER_BUCKET}),
    "prepare_deploy/first_deployment.json": (0, {"endpoint_exists": False}),
    "prepare_deploy/blue_green_update.json": (0, {"endpoint_exists": True, "previous_config": "selfheal-churn-sample"}),
    "prepare_deploy/pending_package.json": (1, {"errorType": "PackageNotApproved"}),
    "prepare_monitor/on_demand.json": (0, {"has_data": True, "files": 1}),
    "prepare_monitor/scheduled.json": (0, {"has_data": True, "files": 1}),
    "record_deployment/deployed.json": (0, {"outcome": "deployed"}),
    "record_deployment/prepare_failed.json": (0, {"outcome": "rolled_back"}),
    "record_deployment/rolled_back_by_alarm.json": (0, {"outcome": "rolled_back"}),
    "record_deployment/smoke_test_failed.json": (0, {"outcome": "rolled_back"}),
    "record_run/registered.json": (0, {"status": "SUCCEEDED", "decision": "registered"}),
    "record_run/rejected.json": (0, {"status": "SUCCEEDED", "decision": "rejected"}),
    "record_run/failed.json": (0, {"status": "FAILED", "decision": "failed"}),
    "register_model/auto.json": (0, {"approval_status": "Approved"}),
    "register_model/manual.json": (0, {"approval_status": "PendingManualApproval"}),
    "smoke_test/binary.json": (0, {"passed": True, "rows": 20}),
    "smoke_test/multiclass.json": (0, {"passed": True, "rows": 20}),
    "smoke_test/regression.json": (0, {"passed": True, "rows": 20}),
    "violation/report.json": (0, {"status": "CompletedWithViolations", "action": "retrain"}),
    "violation/no_data.json": (0, {"status": "Completed", "action": "none"}),
    "violation/analysis_failed.json": (0, {"status": "Failed", "action": "alert"}),
    "violation/quality.json": (0, {"status": "CompletedWithViolations", "action": "retrain"}),
    "violation/labels_arrived.json": (0, {"status": "Completed", "action": "none"}),
}


def name(event: Path) -> str:
    return f"{event.parent.name}/{event.name}"


def logical_id(folder: str) -> str:
    """events/<folder>/ ↔ <Folder>Function in template.yaml, as the tree's names line up."""
    return "".join(part.capitalize() for part in folder.split("_")) + "Function"


def test_every_sample_event_has_its_world_and_its_expected_answer():
    assert {name(event) for event in EVENTS} == set(EXPECTED) == set(WORLDS)


def test_the_events_name_the_local_stacks_data_bucket():
    bucket = Template.load(ROOT / "template.yaml", "selfheal-local", {"XGBoostImageUri": "x", "SKLearnImageUri": "y"})
    local = bucket.physical["DataBucket"]
    named = {uri.split("/")[2] for event in EVENTS for uri in _strings(json.loads(event.read_text()))
             if uri.startswith("s3://")}
    assert named == {local}


def _strings(value):
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("event", EVENTS, ids=name)
def test_every_sample_event_answers_as_on_aws(event: Path, tmp_path: Path, capsys):
    # When the function is invoked with the sample event, as `sam local invoke -e` would
    code = main(["local", "invoke", logical_id(event.parent.name), "-e", str(event), "--out", str(tmp_path)])
    printed = capsys.readouterr()
    # Then it answers as expected: the handler's JSON result (exit 0), or its error by name (exit 1)
    expected_code, fields = EXPECTED[name(event)]
    answer = json.loads(printed.out)
    assert code == expected_code, answer
    assert {key: answer.get(key) for key in fields} == fields
    # And stderr says what the local account held for it, one thing per line
    header, *seeded = printed.err.splitlines()
    assert header == f"the local account holds what {event.name} refers to:"
    assert seeded and all(line.startswith("  ") for line in seeded)
    # And the function's own log was written where the local cloud keeps logs
    assert (tmp_path / "cloud" / "logs" / f"{logical_id(event.parent.name)}.log").is_file()


def test_what_the_account_holds_is_printed_for_people(tmp_path, capsys):
    event = ROOT / "events" / "ingest" / "valid_csv.json"
    main(["local", "invoke", "IngestFunction", "-e", str(event), "--out", str(tmp_path)])
    assert capsys.readouterr().err.splitlines() == [
        "the local account holds what valid_csv.json refers to:",
        "  config/churn.yaml ({metric: {name: auc, threshold: 0.75}, problem: binary, target: churned})",
        "  s3://selfheal-local-databucket/incoming/churn/first.csv (version Wm3Nb4cH1Zb0vZ8qBWnJ2n7G5aQyFQ2S)",
    ]


def test_a_users_own_event_meets_an_empty_account_as_on_aws(tmp_path, capsys):
    # Given a copy of a sample event outside events/: nothing is seeded for it
    own = shutil.copy(ROOT / "events" / "ingest" / "valid_csv.json", tmp_path / "mine.json")
    assert main(["local", "invoke", "IngestFunction", "-e", str(own), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    assert json.loads(printed.out)["reason"] == "the object version no longer exists"


def test_graph_writes_a_picture_and_mermaid_for_every_state_machine(tmp_path, capsys):
    assert main(["graph", "--out", str(tmp_path)]) == 0
    names = {path.stem for path in (ROOT / "statemachines").glob("*.asl.json")}
    assert {p.name for p in tmp_path.iterdir()} == {f"{n.removesuffix('.asl')}.{ext}" for n in names
                                                    for ext in ("svg", "mmd")}
