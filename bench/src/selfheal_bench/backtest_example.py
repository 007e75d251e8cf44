"""A generated history for `selfheal backtest`: a first dataset, then one batch of traffic a week whose labels
arrive days later, while the relation between the features and churn turns gradually (concept drift).

    python -m selfheal_bench.backtest_example DIR [--weeks 26] [--rows 400] [--no-drift]

writes DIR/history.yaml and its data files. Each week: traffic on the week's second day, its labels on the
fourth; the model's monitor runs weekly from its first deployment (rate(7 days)), on the first day.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .datagen import TARGET, churn_frame
from .demo import write_traffic

EXAMPLE_CONFIG: dict[str, Any] = {
    "target": TARGET,
    "problem": "binary",
    "metric": {"name": "auc", "threshold": 0.75},
    "trigger": {"mode": "min_new_rows", "min_new_rows": 1000},
    "hyperparameters": {"num_round": 40, "max_depth": 4, "eta": 0.2},
    # Weekly monitoring; a week of predictions judged by labels that take up to three days.
    "monitor": {"schedule_expression": "rate(7 days)", "label_delay_hours": 72, "min_labels": 150,
                "quality_window_hours": 168},
    # A retrain learns the world as it is now: the newest labelled traffic.
    "retrain": {"on_violation": "retrain", "window": {"mode": "latest"}},
}


def concept_at(week: int, weeks: int, drift: bool) -> float:
    """Gradual concept drift: none for the first quarter of the history, then a steady turn to fully shifted."""
    if not drift:
        return 0.0
    start = weeks // 4
    return min(max((week - start) / max(weeks - start, 1), 0.0), 1.0)


def write_history(folder: Path, weeks: int = 26, rows: int = 400, seed: int = 7, drift: bool = True,
                  first_rows: int = 1500) -> Path:
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    churn_frame(first_rows, seed).to_csv(data / "first.csv", index=False)
    steps: list[dict[str, Any]] = [{"upload": {"model": "churn", "file": "data/first.csv", "at": "0d"}}]
    for week in range(1, weeks + 1):
        concept = concept_at(week, weeks, drift)
        name = f"week{week:02d}"
        write_traffic(data, name, churn_frame(rows, seed + week, shift=concept, concept=concept))
        steps += [{"traffic": {"model": "churn", "file": f"data/{name}.csv", "at": f"{week}w 1d"}},
                  {"labels": {"model": "churn", "file": f"data/{name}_labels.csv", "at": f"{week}w 3d"}}]
    path = folder / "history.yaml"
    path.write_text(yaml.safe_dump({"models": {"churn": {"config": EXAMPLE_CONFIG}}, "steps": steps},
                                   sort_keys=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selfheal_bench.backtest_example",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--rows", type=int, default=400, help="requests a week")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-drift", action="store_true", help="the same relation all along")
    args = parser.parse_args(argv)
    print(write_history(args.folder, args.weeks, args.rows, args.seed, drift=not args.no_drift))
    return 0


if __name__ == "__main__":
    sys.exit(main())
