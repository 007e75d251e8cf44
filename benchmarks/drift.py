"""Drift analysis: ml/monitor.py in memory against evidently, and the monitor job end to end from capture files.

Seeded scenarios of 20 features (12 numeric, 8 categorical): "shifted" moves 6 of them clearly (means,
category mixes) and leaves 14 as they were; "stable" moves none. The baseline is built from a reference
sample (build_baseline, timed apart); analyze_frame's time covers the window only, as the monitor job
runs it against a stored baseline. evidently gets the same frames (through parquet, loading not timed)
in its own environment, and its time covers its whole report: it computes the reference side each run.

End to end: SageMaker data-capture files (one CSV row per request, as the demo's traffic sends them, in
hosting's record format) for two window sizes, analysed by `python ml/monitor.py` in a fresh process each
run. Its floor is a fresh process reading the same files from the page cache; its peak memory (VmHWM) is
compared across the two sizes: a streaming monitor's does not grow with the rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import (
    BENCH_ENV_COMMAND,
    PYTHON,
    ROOT,
    ChildRun,
    Figure,
    Goal,
    Sizes,
    bench_python,
    hot_spots,
    load_ml,
    median,
    run_child,
    timed,
)

THROUGHPUT_GOAL = Goal("ratio", ">=", 50.0)  # against evidently
AGREEMENT_GOAL = Goal("ratio", ">=", 1.0)  # every verdict the same
END_TO_END_GOAL = Goal("value", ">=", 400_000.0)  # rows/s on one instance (issue 12)
MEMORY_GOAL = Goal("ratio", "<=", 1.1)  # peak at the larger window against the smaller: flat
CATEGORY_COUNTS = (3, 4, 5, 6, 8, 10, 12, 20)
SHIFTED = ("n0", "n1", "n2", "n3", "c0", "c1")
RECORDS_PER_FILE = 50_000

FLOOR_READ = """import pathlib, sys
lines = 0
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.jsonl")):
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\\n")
print(lines)
"""


# ------------------------------------------------------------------------------------------------ scenarios


def _categorical(rng: np.random.Generator, levels: int, rows: int, reverse: bool) -> np.ndarray:
    weights = 1.0 / np.arange(1, levels + 1)  # Zipf-like, as real categories are
    weights = weights[::-1] if reverse else weights
    names = np.array([f"level_{i:02d}" for i in range(levels)], dtype=object)
    return rng.choice(names, rows, p=weights / weights.sum())


def scenario_frame(rows: int, seed: int, shift: bool) -> pd.DataFrame:
    """20 features; with shift, n0..n3 and c0, c1 move clearly and the other 14 keep their distribution."""
    rng = np.random.default_rng(seed)
    on = 1.0 if shift else 0.0
    columns: dict[str, Any] = {
        "n0": rng.normal(50 + 5 * on, 10, rows),  # mean +0.5 sd
        "n1": rng.lognormal(3.0 + 0.4 * on, 0.5, rows).round(2),
        "n2": rng.gamma(2.0 + 1.5 * on, 10.0, rows),
        "n3": rng.poisson(20 + 6 * on, rows),  # integral
        "n4": rng.normal(0, 1, rows),
        "n5": rng.lognormal(1.0, 1.0, rows),
        "n6": rng.gamma(1.5, 3.0, rows).round(1),
        "n7": rng.integers(18, 80, rows),  # integral
        "n8": rng.uniform(0, 100, rows),
        "n9": rng.exponential(5.0, rows),
        "n10": rng.normal(1000, 250, rows).round(),
        "n11": rng.normal(0, 1, rows),
    }
    columns["n11"][rng.random(rows) < 0.02] = np.nan  # missing values, at the same rate in every sample
    for index, levels in enumerate(CATEGORY_COUNTS):
        columns[f"c{index}"] = _categorical(rng, levels, rows, reverse=shift and index < 2)
    return pd.DataFrame(columns)


CATEGORICAL = [f"c{i}" for i in range(len(CATEGORY_COUNTS))]


# ---------------------------------------------------------------------------------------------- evidently


def run_evidently(python: Path, work: Path, frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
                  repeats: dict[str, int]) -> dict[str, Any]:
    """evidently on every scenario, in one child process (its import alone takes seconds)."""
    for name, (reference, current) in frames.items():
        reference.to_parquet(work / f"{name}-reference.parquet")
        current.to_parquet(work / f"{name}-current.parquet")
    run = run_child([str(python), str(Path(__file__).with_name("evidently_drift.py")), "--work", str(work),
                     "--scenarios", ",".join(f"{name}:{count}" for name, count in repeats.items()),
                     "--categorical", ",".join(CATEGORICAL)], timeout=3600)
    if run.returncode != 0:
        raise RuntimeError(f"evidently failed: {run.tail()}")
    return json.loads((work / "evidently.json").read_text())


# ------------------------------------------------------------------------------------------------- in memory


def analyze(monitor: Any, reference: pd.DataFrame, current: pd.DataFrame, repeats: int) -> dict[str, Any]:
    baseline_seconds, (statistics, constraints) = timed(load_ml("baseline").build_baseline, reference)
    seconds, metrics = [], None
    for _ in range(repeats):
        elapsed, (_, _, metrics) = timed(monitor.analyze_frame, current, statistics, constraints)
        seconds.append(elapsed)
    assert metrics is not None
    return {"seconds": seconds, "baseline_seconds": baseline_seconds, "metrics": metrics,
            "statistics": statistics, "constraints": constraints}


def compare(scenario: str, ours: dict[str, Any], theirs: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for name, feature in ours["metrics"]["features"].items():
        other = (theirs or {}).get("features", {}).get(name)
        rows.append({
            "scenario": scenario, "feature": name, "shifted": scenario == "shifted" and name in SHIFTED,
            "ours": feature["drifted"], "ours_distance": feature["distance"],
            "evidently": other["drifted"] if other else None, "evidently_score": other["score"] if other else None,
            "evidently_method": other["method"] if other else None,
        })
    return rows


def print_verdicts(rows: list[dict[str, Any]]) -> None:
    print(f"  {'scenario':8} {'feature':7} {'seeded':7} {'selfheal (L-inf)':18} {'evidently (score, method)':44} agree")
    for row in rows:
        ours = f"{_word(row['ours'])} ({row['ours_distance']:.3f})"
        theirs = ("-" if row["evidently"] is None else
                  f"{_word(row['evidently'])} ({row['evidently_score']:.3f}, {row['evidently_method']})")
        agree = "-" if row["evidently"] is None else ("yes" if row["ours"] == row["evidently"] else "NO")
        print(f"  {row['scenario']:8} {row['feature']:7} {_word(row['shifted']):7} {ours:18} {theirs:44} {agree}")


def _word(drifted: bool) -> str:
    return "drift" if drifted else "none"


def in_memory(sizes: Sizes) -> list[Figure]:
    monitor = load_ml("monitor")
    # Throughput from the shifted scenario, verdicts from both.
    repeats = {"shifted": sizes.repeats, "stable": 1}
    frames = {name: (scenario_frame(sizes.drift_reference_rows, seed, shift=False),
                     scenario_frame(sizes.drift_rows, seed + 1, shift=name == "shifted"))
              for name, seed in (("shifted", 100), ("stable", 200))}
    ours = {name: analyze(monitor, *frames[name], repeats[name]) for name in frames}
    # evidently takes a minute a run at full size: 3 runs give its median (1 in quick mode).
    theirs, why_not = _evidently(sizes, frames, {name: 1 if sizes.quick else min(count, 3)
                                                 for name, count in repeats.items()})
    rows = [row for name in frames for row in compare(name, ours[name], (theirs or {}).get(name))]
    print_verdicts(rows)
    return _in_memory_figures(sizes, ours["shifted"], (theirs or {}).get("shifted"), rows, why_not)


def _evidently(sizes: Sizes, frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
               repeats: dict[str, int]) -> tuple[dict[str, Any] | None, str | None]:
    """evidently's results, or why there are none (the table says so instead of the run stopping)."""
    try:
        python = bench_python(create=not sizes.quick)
        if python is None:
            return None, f"evidently's environment is absent (a full run makes it: {BENCH_ENV_COMMAND})"
        with tempfile.TemporaryDirectory(prefix="selfheal-bench-evidently-") as work:
            return run_evidently(python, Path(work), frames, repeats), None
    except (OSError, RuntimeError, subprocess.CalledProcessError) as error:
        return None, f"evidently: {error}"


def _in_memory_figures(sizes: Sizes, ours: dict[str, Any], theirs: dict[str, Any] | None,
                       rows: list[dict[str, Any]], why_not: str | None) -> list[Figure]:
    label = f"drift analysis {sizes.drift_rows:,} rows x 20 (analyze_frame)"
    throughput = Figure(label, "rows/s", THROUGHPUT_GOAL, "evidently DataDriftPreset, same data",
                        value=sizes.drift_rows / median(ours["seconds"]), runs=len(ours["seconds"]))
    throughput.notes.append(f"build_baseline on {sizes.drift_reference_rows:,} reference rows: "
                            f"{ours['baseline_seconds']:.2f} s, once")
    agreement = Figure("drift verdicts agree with evidently (2 scenarios)", "features", AGREEMENT_GOAL,
                       "features compared", data={"verdicts": rows})
    if theirs is None:
        throughput.not_measured = agreement.not_measured = why_not
        return [throughput, agreement]
    throughput.floor = sizes.drift_rows / median(theirs["seconds"])
    runs = len(theirs["seconds"])
    throughput.notes.append(f"evidently: {median(theirs['seconds']):.1f} s a run, median of {runs} "
                            f"run{'s' if runs > 1 else ''}")
    agreement.value = float(sum(row["ours"] == row["evidently"] for row in rows))
    agreement.floor = float(len(rows))
    agreement.runs = 1
    wrong = [f"{row['scenario']}/{row['feature']}" for row in rows if row["ours"] != row["evidently"]]
    if wrong:
        agreement.notes.append("disagree on " + ", ".join(wrong))
    missed = [f"{row['scenario']}/{row['feature']}" for row in rows if row["shifted"] != row["ours"]]
    if missed:
        agreement.notes.append("selfheal's verdict differs from the seeded truth on " + ", ".join(missed))
    return [throughput, agreement]


# ------------------------------------------------------------------------------------------------ end to end


def write_capture(folder: Path, frame: pd.DataFrame) -> None:
    """Data-capture files as hosting writes them: one record per request, <endpoint>/<variant>/yyyy/mm/dd/hh/."""
    lines = frame.to_csv(header=False, index=False, lineterminator="\n").splitlines()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for number, begin in enumerate(range(0, len(lines), RECORDS_PER_FILE)):
        moment = start + timedelta(minutes=number)
        hour = folder / "selfheal-bench" / "AllTraffic" / f"{moment:%Y/%m/%d/%H}"
        hour.mkdir(parents=True, exist_ok=True)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        with open(hour / f"{moment:%M-%S}-{number:05d}.jsonl", "w") as handle:
            for index, line in enumerate(lines[begin: begin + RECORDS_PER_FILE], start=begin):
                handle.write(json.dumps(_record(line, stamp, index)) + "\n")


def _record(line: str, stamp: str, index: int) -> dict[str, Any]:
    return {"captureData": {"endpointInput": {"observedContentType": "text/csv", "mode": "INPUT", "data": line,
                                              "encoding": "CSV"},
                            "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT", "data": "0.5\n",
                                               "encoding": "CSV"}},
            "eventMetadata": {"eventId": f"00000000-0000-4000-8000-{index:012d}", "inferenceTime": stamp},
            "eventVersion": "0"}


def job_folder(work: Path, rows: int, baseline: tuple[dict[str, Any], dict[str, Any]]) -> Path:
    opt_ml = work / f"opt_ml_{rows}"
    base = opt_ml / "processing" / "input" / "baseline"
    base.mkdir(parents=True)
    for name, document in zip(("statistics.json", "constraints.json"), baseline, strict=True):
        (base / name).write_text(json.dumps(document))
    write_capture(opt_ml / "processing" / "input" / "capture", scenario_frame(rows, 301, shift=True))
    return opt_ml


def end_to_end(sizes: Sizes) -> list[Figure]:
    baseline = load_ml("baseline").build_baseline(scenario_frame(sizes.drift_reference_rows, 300, shift=False))
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-capture-") as work:
        folders = {rows: job_folder(Path(work), rows, baseline) for rows in sizes.capture_rows}
        return _end_to_end_figures(sizes, folders)


def _end_to_end_figures(sizes: Sizes, folders: dict[int, Path]) -> list[Figure]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SELFHEAL_")}
    seconds: dict[int, list[float]] = {rows: [] for rows in folders}
    peaks: dict[int, list[float]] = {rows: [] for rows in folders}
    floors: dict[int, list[float]] = {rows: [] for rows in folders}
    bare = median([run_child([PYTHON, "-c", "import numpy, pandas"], sample_memory=True).peak_mb for _ in range(3)])
    for opt_ml in folders.values():  # warm-up: the page cache holds the files for every timed run
        run_child([PYTHON, "-c", FLOOR_READ, str(opt_ml / "processing" / "input" / "capture")])
    for _ in range(sizes.repeats):
        for rows, opt_ml in folders.items():
            job = run_child([PYTHON, str(ROOT / "ml" / "monitor.py")], env | {"SELFHEAL_OPT_ML": str(opt_ml)},
                            sample_memory=True)
            _check_job(job, opt_ml, rows)
            seconds[rows].append(job.seconds)
            peaks[rows].append(job.peak_mb)
            floors[rows].append(run_child([PYTHON, "-c", FLOOR_READ,
                                           str(opt_ml / "processing" / "input" / "capture")]).seconds)
    small, large = sizes.capture_rows
    figures = [Figure(f"monitor job end to end, {rows:,} capture rows", "rows/s", END_TO_END_GOAL,
                      "fresh process reading the same files", value=rows / median(seconds[rows]),
                      floor=rows / median(floors[rows]), runs=sizes.repeats) for rows in folders]
    if figures[-1].met is False:
        job = partial(load_ml("monitor").run_job, folders[large], workers=1)
        figures[-1].notes.append(f"hot spots (in-process, {large:,} rows): " + hot_spots(job))
    figures.append(Figure(f"monitor job peak memory, {small:,} rows", "MB", None,
                          "fresh process importing numpy and pandas", value=median(peaks[small]), floor=bare,
                          runs=sizes.repeats))
    figures.append(Figure(f"monitor job peak memory, {large:,} rows", "MB", MEMORY_GOAL,
                          f"the same job's peak at {small:,} rows", value=median(peaks[large]),
                          floor=median(peaks[small]), runs=sizes.repeats))
    return figures


def _check_job(job: ChildRun, opt_ml: Path, rows: int) -> None:
    if job.returncode != 0:
        raise RuntimeError(f"monitor.py failed: {job.tail()}")
    analysed = json.loads((opt_ml / "processing" / "output" / "report" / "drift_metrics.json").read_text())["rows"]
    if analysed != rows:
        raise RuntimeError(f"monitor.py analysed {analysed} rows of {rows}")
