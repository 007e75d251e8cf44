"""`selfheal demo`: the whole self-healing loop on generated data, on the local cloud.

The story: a first dataset is trained, gated, registered and deployed. Ordinary traffic is served, its
labels arrive, and a monitor run finds no drift and the quality holding. Then the world changes: traffic
drifts, and the relation between the features and churn turns around (concept shift). The next monitor run
finds the drift, but the model's own scores still look confident and no labelled data newer than the
champion's exists: a retrain now would learn nothing new, so it waits for labels. The labels arrive; the
next run confirms the drop in quality on them and retrains on the labelled traffic; the challenger beats the
champion on the newest labelled rows and replaces it with a blue/green rollout, while traffic keeps being
answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .datagen import TARGET, churn_frame
from .runner import describe_traffic, run_scenario
from .scenario import load_scenario

DEMO_CONFIG: dict[str, Any] = {
    "target": TARGET,
    "problem": "binary",
    "metric": {"name": "auc", "threshold": 0.75, "min_improvement": 0.01},
    "trigger": {"mode": "min_new_rows", "min_new_rows": 1000},
    # A retrain learns the world as it is now: from the newest dataset, the labelled traffic.
    "retrain": {"on_violation": "retrain", "window": {"mode": "latest"}},
    "hyperparameters": {"num_round": 60, "max_depth": 4, "eta": 0.2},
}
# The first dataset must start a run on its own.
MIN_ROWS = DEMO_CONFIG["trigger"]["min_new_rows"]


def write_demo(out: Path, rows: int, seed: int) -> Path:
    """Write the demo's data files and scenario under out/; returns the scenario's path."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    churn_frame(rows, seed).to_csv(data / "first.csv", index=False)
    write_traffic(data, "traffic", churn_frame(max(250, rows // 10), seed + 1))
    # Drifted inputs, and the relation to churn turned around: only labels can show the second.
    write_traffic(data, "traffic_shifted", churn_frame(max(1000, rows // 2), seed + 2, shift=1.0, concept=1.0))
    steps = [
        {"upload": {"model": "churn", "file": "data/first.csv"}},
        {"traffic": {"model": "churn", "file": "data/traffic.csv"}},
        {"labels": {"model": "churn", "file": "data/traffic_labels.csv"}},
        {"monitor": {"model": "churn"}},
        {"traffic": {"model": "churn", "file": "data/traffic_shifted.csv"}},
        {"monitor": {"model": "churn"}},
        {"labels": {"model": "churn", "file": "data/traffic_shifted_labels.csv"}},
        {"monitor": {"model": "churn"}},
    ]
    path = out / "scenario.yaml"
    path.write_text(yaml.safe_dump({"models": {"churn": {"config": DEMO_CONFIG}}, "steps": steps}, sort_keys=False))
    return path


def write_traffic(folder: Path, name: str, frame: pd.DataFrame) -> None:
    """Requests with their ids (<name>.csv), and the labels a labelling process returns later (<name>_labels.csv)."""
    frame = frame.assign(inference_id=[f"{name}-{i}" for i in range(len(frame))])
    frame.drop(columns=[TARGET]).to_csv(folder / f"{name}.csv", index=False)
    frame[["inference_id", TARGET]].to_csv(folder / f"{name}_labels.csv", index=False)


def run_demo(out: Path, rows: int = 3000, seed: int = 42) -> dict[str, Any]:
    scenario = load_scenario(write_demo(out, rows, seed))
    report = run_scenario(scenario, out)
    print_summary(report)
    return report


def print_summary(report: dict[str, Any]) -> None:
    print("\nruns")
    print(f"  {'run':36} {'trigger':8} {'status':10} {'decision':10} {'auc':>6} {'champion':>8}")
    for run in report["runs"]:
        auc = run["metrics"].get("auc")
        champion = (run.get("champion_metrics") or {}).get("auc")
        print(f"  {run['run_id'][:36]:36} {run['trigger']:8} {run['status']:10} {run['decision']:10} "
              f"{_num(auc):>6} {_num(champion):>8}")
    for model, endpoint in report["endpoints"].items():
        outcomes = ", ".join(h["outcome"] for h in endpoint["history"])
        print(f"\nserving {model}: {endpoint['status']}, package {endpoint['model_package_arn']} ({outcomes})")
    for check in report["monitoring"]:
        print(describe_check(check))
    for sent in report["traffic"]:
        print(describe_traffic(sent))


def describe_check(check: dict[str, Any]) -> str:
    """One monitoring analysis in a line: what it found, and what the execution did."""
    if check.get("kind") == "model_quality":
        metric = check.get("metric")
        labels = check.get("labels") or {}
        found = (f"realized {metric} {_num((check.get('metrics') or {}).get(metric))} on {labels.get('matched', 0)} "
                 f"labelled predictions, estimated {_num((check.get('estimated') or {}).get(metric))}")
        return f"monitor {check['model']} (model quality): {found}; action {check['action']}"
    features = sorted({v["feature_name"] for v in check["violations"]})
    return (f"monitor {check['model']} (drift): {check['status']}, action {check['action']}"
            + (f", drift on {', '.join(features)}" if features else ""))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
