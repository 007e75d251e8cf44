"""`selfheal demo`: the whole self-healing loop on generated data, on the local cloud.

The story: a first dataset is trained, gated, registered and deployed; ordinary traffic is served and a
monitor run finds nothing; a newer labelled batch arrives whose distribution has shifted (recorded, too
few rows to train on its own); shifted traffic follows; the next monitor run finds drift, which starts a
retrain on the newest window; the challenger beats the champion on the same held-out data and replaces
it with a blue/green rollout, while traffic keeps being answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .datagen import TARGET, churn_frame
from .runner import describe_traffic, run_scenario
from .scenario import load_scenario

DEMO_CONFIG: dict[str, Any] = {
    "target": TARGET,
    "problem": "binary",
    "metric": {"name": "auc", "threshold": 0.75, "min_improvement": 0.01},
    # The shifted batch alone is too small to start a run; drift is what retrains on it.
    "trigger": {"mode": "min_new_rows", "min_new_rows": 1000},
    "retrain": {"on_violation": "retrain", "window": {"mode": "latest"}},
    "hyperparameters": {"num_round": 60, "max_depth": 4, "eta": 0.2},
}
# The first dataset must start a run on its own.
MIN_ROWS = DEMO_CONFIG["trigger"]["min_new_rows"]


def write_demo(out: Path, rows: int, seed: int) -> Path:
    """Write the demo's data files and scenario under out/; returns the scenario's path."""
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    shifted_rows = max(200, min(rows // 3, DEMO_CONFIG["trigger"]["min_new_rows"] - 1))
    traffic_rows = max(100, rows // 10)
    churn_frame(rows, seed).to_csv(data / "first.csv", index=False)
    churn_frame(traffic_rows, seed + 1, with_target=False).to_csv(data / "traffic.csv", index=False)
    churn_frame(shifted_rows, seed + 2, shift=1.0).to_csv(data / "shifted.csv", index=False)
    churn_frame(traffic_rows, seed + 3, shift=1.0, with_target=False).to_csv(data / "traffic_shifted.csv",
                                                                             index=False)
    scenario = {
        "models": {"churn": {"config": DEMO_CONFIG}},
        "steps": [
            {"upload": {"model": "churn", "file": "data/first.csv"}},
            {"traffic": {"model": "churn", "file": "data/traffic.csv"}},
            {"monitor": {"model": "churn"}},
            {"upload": {"model": "churn", "file": "data/shifted.csv"}},
            {"traffic": {"model": "churn", "file": "data/traffic_shifted.csv"}},
            {"monitor": {"model": "churn"}},
        ],
    }
    path = out / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


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
        features = sorted({v["feature_name"] for v in check["violations"]})
        print(f"monitor {check['model']}: {check['status']}, action {check['action']}"
              + (f", drift on {', '.join(features)}" if features else ""))
    for sent in report["traffic"]:
        print(describe_traffic(sent))


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
