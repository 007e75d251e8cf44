"""The loop: `selfheal demo`'s wall time against the compute time of the SageMaker jobs it ran.

Everything that is not a job script's own process (the local cloud's state machines, Lambda handlers, S3
copies, waits, the traffic the demo sends) is orchestration; the goal keeps it under 25% of the job time.
The demo runs in a child process (this file as a script) so that a failing or hanging demo costs its figure
only: the child times run_demo and reads each job's compute seconds from report.json's "jobs", and
writes both as JSON for the parent.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from common import PYTHON, Figure, Goal, Sizes, child_result

GOAL_RATIO = 1.25
TIMEOUT_SECONDS = 900
SEED = 42


def measure(sizes: Sizes) -> list[Figure]:
    figure = Figure(f"demo loop ({sizes.demo_rows:,} rows) wall time", "s", Goal("ratio", "<=", GOAL_RATIO),
                    "sum of the jobs' own compute time")
    measured = child_result(figure, "the demo", lambda folder, result: [
        PYTHON, __file__, "--out", str(folder / "demo"), "--rows", str(sizes.demo_rows), "--seed", str(SEED),
        "--result", str(result)], TIMEOUT_SECONDS)
    if measured is not None:
        _judge(figure, measured)
    return [figure]


def _judge(figure: Figure, measured: dict[str, Any]) -> None:
    """The figure from the child's measurements, unless the demo did not play the whole loop."""
    jobs, failed = measured["jobs"], [r for r in measured["runs"] if r["status"] != "SUCCEEDED"]
    compute, wall = sum(job["seconds"] for job in jobs), measured["wall_seconds"]
    figure.data = measured
    if failed or not jobs:
        # A loop that broke half-way is faster than the real one: its time is not the figure.
        figure.not_measured = ("the demo did not play the whole loop: " + "; ".join(
            f"run {r['run_id']} {r['status']} ({r['error']})" for r in failed)) if failed else (
            "the demo ran no SageMaker job: nothing to compare its wall time with")
        figure.notes.append(f"as far as it went (not the figure): {wall:.1f} s wall, "
                            f"{compute:.1f} s in {len(jobs)} jobs")
        return
    figure.value, figure.floor, figure.runs = wall, compute, 1
    inside = measured["executions_seconds"]
    figure.notes.append(f"{len(jobs)} jobs in {len(measured['runs'])} runs (compute seconds from "
                        f"{measured['source']}), {measured['traffic_errors']} traffic errors")
    figure.notes.append(f"where the wall time went: {compute:.1f} s in jobs, {max(inside - compute, 0):.1f} s "
                        f"in executions around them, {wall - inside:.1f} s outside any execution "
                        "(local cloud start-up, data, traffic, report)")


def run(out: Path, rows: int, seed: int) -> dict[str, Any]:
    from selfheal_bench.demo import run_demo  # the child's imports: the parent needs none of the local cloud

    started = time.perf_counter()
    report = run_demo(out, rows=rows, seed=seed)
    wall = time.perf_counter() - started
    outcome = {"wall_seconds": wall,
               "runs": [{"run_id": run["run_id"], "trigger": run["trigger"], "status": run["status"],
                         "error": _first_line(run.get("error"), run.get("cause"))} for run in report["runs"]],
               "traffic_errors": sum(sent["errors"] for sent in report["traffic"]),
               "executions_seconds": _covered([(e["started"], e["stopped"]) for e in report.get("executions", [])
                                               if e.get("stopped")])}
    jobs = [{"name": j["name"], "kind": j["kind"], "seconds": j["seconds"]} for j in report["jobs"]]
    return outcome | {"jobs": jobs, "source": "report.json"}


def _covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds during which at least one execution ran (a DeployPipeline runs inside its TrainingPipeline)."""
    total, end = 0.0, float("-inf")
    for start, stop in sorted(intervals):
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total


def _first_line(error: str | None, cause: str | None) -> str | None:
    text = ": ".join(part for part in (error, cause) if part)
    return text.splitlines()[0][:200] if text else None


def main() -> None:
    parser = argparse.ArgumentParser(description="run the demo; write its wall time and job compute times")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args()
    args.result.write_text(json.dumps(run(args.out, args.rows, args.seed)))


if __name__ == "__main__":
    main()
