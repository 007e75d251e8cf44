"""`selfheal demo` at a small size: the whole story, asserted on report.json."""

from __future__ import annotations

import json

from selfheal.cli import main
from selfheal.datagen import SHIFTED_FEATURES


def test_the_demo_heals_a_drifted_model_with_no_traffic_errors(tmp_path, capsys):
    # When the demo runs with its smallest dataset
    assert main(["demo", "--out", str(tmp_path), "--rows", "1200", "--seed", "7"]) == 0
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
    # And it ended with the summary people read, and wrote the page beside report.json
    printed = capsys.readouterr().out
    assert "runs" in printed and "serving churn: InService" in printed
    assert (tmp_path / "report.html").is_file()
