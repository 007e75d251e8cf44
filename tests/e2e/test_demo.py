"""`selfheal demo` at its smallest size (--rows 1000): the whole labels story, asserted on report.json and on what
it printed. (`make demo` at the default size runs in test_first_contact.py.)"""

from __future__ import annotations

import json

from selfheal_bench.datagen import SHIFTED_FEATURES
from selfheal_bench.demo import MIN_ROWS

from selfheal.cli import main


def test_the_smallest_demo_waits_for_labels_then_heals_the_concept_shift_with_no_traffic_errors(tmp_path, capsys):
    # When the demo runs with its smallest dataset
    assert main(["demo", "--out", str(tmp_path), "--rows", str(MIN_ROWS), "--seed", "7"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())

    # Then monitoring runs three times, each judging drift and model quality (one entry per kind)
    monitoring = report["monitoring"]
    assert [m["kind"] for m in monitoring] == ["data", "model_quality"] * 3
    drift = [m for m in monitoring if m["kind"] == "data"]
    quality = [m for m in monitoring if m["kind"] == "model_quality"]
    # First: ordinary traffic, its labels arrived: no drift, quality holding
    assert (drift[0]["violations"], drift[0]["action"]) == ([], "none")
    assert quality[0]["labels"]["matched"] == 250 and quality[0]["metrics"]["auc"] > 0.75
    # Second: drift on the shifted features only, while the drifted predictions await labels: it waits
    assert drift[1]["status"] == "CompletedWithViolations" and drift[1]["action"] == "wait_for_labels"
    assert {v["feature_name"] for v in drift[1]["violations"]} <= set(SHIFTED_FEATURES)
    assert quality[1]["labels"]["pending"] == 1000 and "await their labels" in quality[1]["reason"]
    # Third: the labels confirm the drop (concept shift), so it retrains on the labelled traffic
    assert quality[2]["status"] == "CompletedWithViolations" and quality[2]["action"] == "retrain"
    assert quality[2]["labels"]["matched"] == 1250 and quality[2]["metrics"]["auc"] < 0.75
    # And the quality run trained on the labelled traffic, beat the champion on the same rows, and now serves
    first, retrain = report["runs"]
    assert (first["trigger"], first["decision"]) == ("upload", "deployed")
    assert (retrain["trigger"], retrain["decision"]) == ("quality", "deployed")
    assert [d.rsplit("/", 1)[-1] for d in retrain["datasets"]] == ["labelled_traffic.csv"]
    assert retrain["metrics"]["auc"] > retrain["champion_metrics"]["auc"]
    endpoint = report["endpoints"]["churn"]
    assert endpoint["model_package_arn"] == retrain["model_package_arn"]
    assert [h["outcome"] for h in endpoint["history"]] == ["deployed", "deployed"]
    assert all(sent["errors"] == 0 for sent in report["traffic"]) and len(report["traffic"]) == 2
    assert report["problems"] == []

    # And each step printed what it did, one line a person can act on
    printed = capsys.readouterr().out.splitlines()
    for line in ["step 1/8: upload churn first.csv", f"  accepted incoming/churn/first.csv: {MIN_ROWS} rows, 9 columns",
                 "step 2/8: traffic churn traffic.csv", "  traffic churn: 250 rows, 0 errors",
                 "step 3/8: labels churn traffic_labels.csv",
                 "monitor churn (drift): CompletedWithViolations, action wait_for_labels, drift on "
                 + ", ".join(sorted(v["feature_name"] for v in drift[1]["violations"])),
                 "serving churn: InService, package " f"{retrain['model_package_arn']} (deployed, deployed)"]:
        assert line in printed, line
    assert printed[-1] == (f"report: {tmp_path / 'report.json'} and {tmp_path / 'report.html'} (2 runs, 0 quarantined);"
                           f" logs in {tmp_path / 'cloud' / 'logs'}")
    assert (tmp_path / "report.html").is_file()
