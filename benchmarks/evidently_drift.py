"""evidently's data-drift report on parquet scenarios, timed; run with .venv-bench's python.

evidently 0.7 needs pandas < 3, so it has an environment of its own and this script is its side of the
comparison. For each scenario NAME:REPEATS it loads WORK/NAME-reference.parquet and WORK/NAME-current.parquet
(not timed), times only evidently's work on the in-memory frames (Dataset.from_pandas and Report.run with
DataDriftPreset, default methods and thresholds) REPEATS times, and writes WORK/evidently.json:
{NAME: {"seconds": [...], "features": {column: {"drifted", "score", "method"}}}}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def run(reference: pd.DataFrame, current: pd.DataFrame, definition: DataDefinition) -> Any:
    report = Report([DataDriftPreset()], include_tests=True)  # the tests carry evidently's verdicts
    return report.run(current_data=Dataset.from_pandas(current, data_definition=definition),
                      reference_data=Dataset.from_pandas(reference, data_definition=definition))


def verdicts(result: Any) -> dict[str, dict[str, Any]]:
    """{column: {drifted, score, method}} from evidently's ValueDrift metrics and their tests."""
    document = result.dict()
    found: dict[str, dict[str, Any]] = {}
    for metric in document["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith(":ValueDrift"):
            found[config["column"]] = {"score": metric["value"], "method": config.get("method")}
    for test in document["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type", "").endswith(":ValueDrift"):
            found[params["column"]]["drifted"] = test["status"] == "FAIL"
    return found


def scenario(work: Path, name: str, repeats: int, categorical: list[str]) -> dict[str, Any]:
    reference = pd.read_parquet(work / f"{name}-reference.parquet")
    current = pd.read_parquet(work / f"{name}-current.parquet")
    definition = DataDefinition(numerical_columns=[c for c in reference.columns if c not in categorical],
                                categorical_columns=categorical)
    seconds, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run(reference, current, definition)
        seconds.append(time.perf_counter() - started)
    return {"seconds": seconds, "features": verdicts(result)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--scenarios", required=True, help="NAME:REPEATS,...")
    parser.add_argument("--categorical", default="", help="comma-separated categorical columns; the rest numeric")
    args = parser.parse_args()
    categorical = [name for name in args.categorical.split(",") if name]
    results = {}
    for item in args.scenarios.split(","):
        name, repeats = item.split(":")
        results[name] = scenario(args.work, name, int(repeats), categorical)
    (args.work / "evidently.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main()
