"""Labels decide, end to end: drifted traffic whose labels show the model still right is no reason to
retrain (the pending retrain is cleared); the same drift with the relation turned around retrains once,
on the labelled traffic. Run as a user runs a scenario (`selfheal local run`)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from selfheal_bench.datagen import churn_frame
from selfheal_bench.demo import DEMO_CONFIG, write_traffic

from selfheal.cli import main


def run_story(tmp_path: Path, concept: float) -> dict:
    """A model trained on the original population; drifted traffic; a monitor run; its labels; a monitor run."""
    data = tmp_path / "data"
    data.mkdir()
    churn_frame(1000, seed=7).to_csv(data / "first.csv", index=False)
    write_traffic(data, "drifted", churn_frame(600, seed=9, shift=1.0, concept=concept))
    steps = [{"upload": {"model": "churn", "file": "data/first.csv"}},
             {"traffic": {"model": "churn", "file": "data/drifted.csv"}},
             {"monitor": {"model": "churn"}},
             {"labels": {"model": "churn", "file": "data/drifted_labels.csv"}},
             {"monitor": {"model": "churn"}}]
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump({"models": {"churn": {"config": DEMO_CONFIG}}, "steps": steps}))
    assert main(["local", "run", str(scenario), "--out", str(tmp_path / "out")]) == 0
    return json.loads((tmp_path / "out" / "report.json").read_text())


def quality(report: dict) -> list[dict]:
    return [m for m in report["monitoring"] if m["kind"] == "model_quality"]


def test_drift_whose_labels_show_the_model_still_right_clears_the_pending_retrain(tmp_path):
    report = run_story(tmp_path, concept=0.0)
    before, after = quality(report)
    # Then drift without labels waited for them, and the labels showed the quality holding: no retrain
    assert before["action"] == "wait_for_labels"
    assert after["labels"]["matched"] == 600 and after["metrics"]["auc"] > 0.75 and after["action"] == "none"
    assert "the pending retrain is cleared" in after["reason"]
    assert [run["trigger"] for run in report["runs"]] == ["upload"]


def test_drift_whose_labels_confirm_the_drop_retrains_once_on_the_labelled_traffic(tmp_path):
    report = run_story(tmp_path, concept=1.0)
    before, after = quality(report)
    assert before["action"] == "wait_for_labels"
    assert after["metrics"]["auc"] < 0.75 and after["action"] == "retrain"
    first, retrain = report["runs"]
    assert (retrain["trigger"], retrain["decision"]) == ("quality", "deployed")
    assert [d.rsplit("/", 1)[-1] for d in retrain["datasets"]] == ["labelled_traffic.csv"]
    # the challenger beat the champion strictly, on the same newest labelled rows
    assert retrain["metrics"]["auc"] > retrain["champion_metrics"]["auc"]
    assert report["endpoints"]["churn"]["model_package_arn"] == retrain["model_package_arn"]
