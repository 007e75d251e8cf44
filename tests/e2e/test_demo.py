"""`selfheal demo` at its smallest size (--rows 1000): the whole story, asserted on report.json and on what
it printed. (`make demo` at the default size runs in test_first_contact.py.)"""

from __future__ import annotations

import json

from selfheal.cli import main
from selfheal.datagen import SHIFTED_FEATURES
from selfheal.demo import MIN_ROWS


def test_the_demo_at_its_smallest_size_heals_a_drifted_model_with_no_traffic_errors(tmp_path, capsys):
    # When the demo runs with its smallest dataset
    assert main(["demo", "--out", str(tmp_path), "--rows", str(MIN_ROWS), "--seed", "7"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())

    # Then the first monitor run finds nothing and the second finds drift on shifted features only
    ordinary, drifted = report["monitoring"]
    assert ordinary["violations"] == [] and ordinary["action"] == "none"
    assert drifted["status"] == "CompletedWithViolations" and drifted["action"] == "retrain"
    assert {v["feature_name"] for v in drifted["violations"]} <= set(SHIFTED_FEATURES)
    # And the drift run trained on the newest window, beat the champion on the same rows, and now serves
    first, retrain = report["runs"]
    assert (first["trigger"], first["decision"]) == ("upload", "deployed")
    assert (retrain["trigger"], retrain["decision"]) == ("drift", "deployed")
    assert [d.rsplit("/", 1)[-1] for d in retrain["datasets"]] == ["shifted.csv"]
    assert retrain["metrics"]["auc"] > retrain["champion_metrics"]["auc"]
    endpoint = report["endpoints"]["churn"]
    assert endpoint["model_package_arn"] == retrain["model_package_arn"]
    assert [h["outcome"] for h in endpoint["history"]] == ["deployed", "deployed"]
    assert all(sent["errors"] == 0 for sent in report["traffic"]) and len(report["traffic"]) == 2
    assert report["problems"] == []

    # And each step printed what it did, one line a person can act on
    printed = capsys.readouterr().out.splitlines()
    for line in ["step 1/6: upload churn first.csv", f"  accepted incoming/churn/first.csv: {MIN_ROWS} rows, 9 columns",
                 "step 2/6: traffic churn traffic.csv", "  traffic churn: 100 rows, 0 errors",
                 "  accepted incoming/churn/shifted.csv: 333 rows, 9 columns", "serving churn: InService, package "
                 f"{retrain['model_package_arn']} (deployed, deployed)"]:
        assert line in printed, line
    assert printed[-1] == (f"report: {tmp_path / 'report.json'} and {tmp_path / 'report.html'} (2 runs, 0 quarantined);"
                           f" logs in {tmp_path / 'cloud' / 'logs'}")
    assert (tmp_path / "report.html").is_file()
