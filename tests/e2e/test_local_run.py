"""`selfheal local run` on real tabular datasets (the ones scikit-learn ships), one per problem type
(binary: breast cancer, in test_first_contact.py, run from the shell as the README shows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sklearn import datasets

from selfheal.cli import main

CASES = {
    # dataset loader, problem, metric and the threshold a plain XGBoost model clears on it
    "wine": (datasets.load_wine, "multiclass", {"name": "accuracy", "threshold": 0.8}),
    "diabetes": (datasets.load_diabetes, "regression", {"name": "r2", "threshold": 0.2}),
}


@pytest.mark.parametrize("model", sorted(CASES))
def test_a_scenario_on_a_real_dataset_trains_gates_registers_and_deploys(tmp_path: Path, model: str, capsys):
    # Given a real dataset as CSV and a scenario with only the required configuration fields
    loader, problem, metric = CASES[model]
    frame = loader(as_frame=True).frame
    frame.to_csv(tmp_path / f"{model}.csv", index=False)
    scenario = {"models": {model: {"config": {"target": "target", "problem": problem, "metric": metric}}},
                "steps": [{"upload": {"model": model, "file": f"{model}.csv"}}]}
    (tmp_path / "scenario.yaml").write_text(yaml.safe_dump(scenario))

    # When the scenario is run from the command line
    assert main(["local", "run", str(tmp_path / "scenario.yaml"), "--out", str(tmp_path / "out")]) == 0

    # Then it printed the path the run took, and report.json says the model passed its gate and serves
    printed = capsys.readouterr().out
    assert "TrainingPipeline" in printed and "RecordDeployed" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (run,) = report["runs"]
    assert run["decision"] == "deployed", run
    assert run["metrics"][metric["name"]] >= metric["threshold"]
    assert report["endpoints"][model]["model_package_arn"] == run["model_package_arn"]
    assert (tmp_path / "out" / "report.html").stat().st_size > 0
