"""selfheal's drift monitor, in Amazon SageMaker Model Monitor's file formats.

Two uses:
* importable: `build_baseline(frame)` writes the baseline (statistics.json, constraints.json) at training
  time, and `analyze_frame(frame, statistics, constraints)` analyses an in-memory window;
* a SageMaker processing job, `python3 monitor.py [--start-time ISO] [--end-time ISO]`:
    <OPT_ML>/processing/input/baseline/{statistics.json,constraints.json}   the baseline
    <OPT_ML>/processing/input/capture/**/*.jsonl                            endpoint data capture
    <OPT_ML>/processing/output/report/{statistics.json,constraint_violations.json,drift_metrics.json}
  On N > 1 instances (<OPT_ML>/config/resourceconfig.json names the hosts; the capture input ShardedByS3Key),
  each host writes its share of the window instead of the report:
    <OPT_ML>/processing/output/partials/partial-<host>.json      (a name of its own: hosts share the S3 prefix)
  and a 1-instance job, `monitor.py --merge`, merges every host's share into the report:
    <OPT_ML>/processing/input/partials/partial-*.json -> <OPT_ML>/processing/output/report/...
  The window's counts sit on the baseline's fixed bucket edges, so the merge is exact: the same verdicts
  (and the same numbers, up to the last bits of merged moments) as one instance reading every file.

Memory stays bounded whatever the window holds: capture files are streamed, parsed a chunk at a time, and only
per-feature accumulators are kept (counts at the baseline's bucket edges, moments, capped category
counters). Runs in SageMaker's framework containers: numpy, pandas (1.x to 3.x) and the standard library.

The parts, beside this file: baseline.py (build and read the baseline), accumulators.py (per-feature
statistics), drift_checks.py (the window against the baseline: distances and Model Monitor's checks),
capture.py (reading data-capture files fast).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # siblings ship beside this script
    sys.path.insert(0, str(HERE))

from baseline import Baseline, BaselineError, read_baseline  # noqa: E402
from drift_checks import PartialWindowError, WindowAccumulator, evaluate, parse_time  # noqa: E402

if TYPE_CHECKING:  # the merge of a sharded window reads JSON counts only: it never loads pandas (most of its time)
    import pandas as pd

OPT_ML = Path(os.environ.get("SELFHEAL_OPT_ML", "/opt/ml"))
CHUNK_ROWS = 50_000  # rows analysed at once by analyze_frame
BASELINE_FILES = ("statistics.json", "constraints.json")
PARTIAL_PREFIX = "partial-"


def analyze_frame(
    frame: pd.DataFrame, statistics: dict[str, Any], constraints: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Analyse an in-memory window (columns named as the baseline's features) against the baseline."""
    acc = WindowAccumulator(read_baseline(statistics, constraints))
    for begin in range(0, len(frame), CHUNK_ROWS):
        acc.update(frame.iloc[begin : begin + CHUNK_ROWS])
    return evaluate(acc)


def analyze_capture(
    paths: list[Path],
    statistics: dict[str, Any],
    constraints: dict[str, Any],
    start: datetime | None = None,
    end: datetime | None = None,
    workers: int | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Analyse data capture files (records with inferenceTime in [start, end)) against the baseline."""
    return evaluate(accumulate_capture(paths, read_baseline(statistics, constraints), start, end, workers), start, end)


def accumulate_capture(
    paths: list[Path], baseline: Baseline, start: datetime | None, end: datetime | None, workers: int | None
) -> WindowAccumulator:
    from capture import ScanTask, plan, scan  # reads capture files with pandas: not the merge's business

    # vCPUs are mostly hyperthread pairs: on a 2-vCPU machine, two workers ran no faster than one.
    workers = workers or max(1, usable_cpus() // 2)
    tasks = [ScanTask(pieces, baseline, start, end) for pieces in plan(paths, workers)]
    if len(tasks) == 1:
        return scan(tasks[0])
    acc = WindowAccumulator(baseline)
    with ProcessPoolExecutor(min(workers, len(tasks))) as pool:
        for part in pool.map(scan, tasks):
            acc.merge(part)
    return acc


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity, which a container's cpuset limits, rather than the host
    machine's count (os.cpu_count); the machine's where affinity is unknown (not Linux)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 2


# ------------------------------------------------------------------------------------------------------ job


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BaselineError(f"cannot read the baseline file {path}: {error}") from error


def _read_baseline(processing: Path) -> Baseline:
    return read_baseline(*(_read_json(processing / "input" / "baseline" / name) for name in BASELINE_FILES))


def processing_hosts(opt_ml: Path) -> tuple[str, list[str]]:
    """(this host, every host of the job) from resourceconfig.json; one host when there is none (run by hand)."""
    path = opt_ml / "config" / "resourceconfig.json"
    if not path.is_file():
        return "algo-1", ["algo-1"]
    config = json.loads(path.read_text())
    return str(config["current_host"]), [str(host) for host in config["hosts"]]


def run_job(
    opt_ml: Path, start: datetime | None = None, end: datetime | None = None, workers: int | None = None
) -> dict[str, Any]:
    """The processing job under SageMaker's container layout: on one host, the report (returns drift_metrics.json's
    content); on one of several, this host's share of the window (returns its counts)."""
    processing = opt_ml / "processing"
    baseline = _read_baseline(processing)
    capture = processing / "input" / "capture"
    paths = sorted(capture.rglob("*.jsonl")) if capture.is_dir() else []
    acc = accumulate_capture(paths, baseline, start, end, workers)
    host, hosts = processing_hosts(opt_ml)
    if len(hosts) == 1:
        return write_report(processing, acc, start, end)
    partials = processing / "output" / "partials"
    partials.mkdir(parents=True, exist_ok=True)
    (partials / f"{PARTIAL_PREFIX}{host}.json").write_text(json.dumps({"host": host, "hosts": hosts, **acc.to_dict()}))
    return {"host": host, "hosts": hosts, "rows": acc.rows, "records": acc.records}


def merge_job(opt_ml: Path, start: datetime | None = None, end: datetime | None = None) -> dict[str, Any]:
    """The report of a window analysed on several hosts, from every host's share (each named by its host)."""
    processing = opt_ml / "processing"
    baseline = _read_baseline(processing)
    acc = WindowAccumulator(baseline)
    expected: list[str] | None = None
    found = []
    for path in sorted((processing / "input" / "partials").glob(f"{PARTIAL_PREFIX}*.json")):
        try:
            state = json.loads(path.read_text())
            host, hosts = str(state["host"]), sorted(map(str, state["hosts"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise PartialWindowError(f"cannot read the partial window {path.name}: {error!r}") from error
        expected = expected or hosts
        found.append(host)
        acc.merge(WindowAccumulator.from_dict(baseline, state))
    if not found or sorted(found) != expected:
        raise PartialWindowError(f"partial windows of hosts {sorted(found)}, expected one from each of {expected}: "
                                 "a host's share is missing, and the report would leave its records out")
    return write_report(processing, acc, start, end)


def write_report(processing: Path, acc: WindowAccumulator, start: datetime | None,
                 end: datetime | None) -> dict[str, Any]:
    statistics, violations, metrics = evaluate(acc, start, end)
    report = processing / "output" / "report"
    report.mkdir(parents=True, exist_ok=True)
    for name, document in (
        ("statistics.json", statistics),
        ("constraint_violations.json", violations),
        ("drift_metrics.json", metrics),
    ):
        (report / name).write_text(json.dumps(document, indent=2))
    return metrics


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="selfheal's drift monitor (a SageMaker processing job)")
    parser.add_argument("--start-time", type=parse_time, help="analyse records with inferenceTime >= this (ISO)")
    parser.add_argument("--end-time", type=parse_time, help="analyse records with inferenceTime < this (ISO)")
    parser.add_argument("--workers", type=int,
                        help="processes reading capture files (default: one per 2 of the vCPUs it may use)")
    parser.add_argument("--merge", action="store_true",
                        help="merge the hosts' partial windows (input/partials) of a multi-instance analysis")
    arguments = parser.parse_args(argv)
    if arguments.start_time and arguments.end_time and arguments.start_time >= arguments.end_time:
        parser.error("--start-time must be before --end-time")
    return arguments


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    if arguments.merge:
        metrics = merge_job(OPT_ML, arguments.start_time, arguments.end_time)
    else:
        metrics = run_job(OPT_ML, arguments.start_time, arguments.end_time, arguments.workers)
    if "features" not in metrics:  # one host's share of the window
        print(f"{metrics['host']} of {len(metrics['hosts'])} hosts: {metrics['rows']} rows from "
              f"{metrics['records']} capture records, written for the merge")
        return 0
    drifted = [name for name, feature in metrics["features"].items() if feature["drifted"]]
    print(
        f"analysed {metrics['rows']} rows from {metrics['records']} capture records "
        f"({metrics['invalid_records']} invalid, {metrics['skipped_records']} outside the window): "
        f"{metrics['violation_count']} violations; drifted: {', '.join(drifted) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
