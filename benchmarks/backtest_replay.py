"""The backtest: `selfheal backtest`'s wall time for a generated history under the three policies, against the compute
time of the SageMaker jobs the replays ran.

The history is the README's worked example (selfheal_bench.backtest_example: weekly traffic with gradual concept drift,
labels three days later), 26 weeks in a full run. Issue 13's goal: the three policies of a 26-batch history replay
in under 10 minutes on 2 cores. The floor is what the replays cannot avoid: their jobs' own compute seconds (each
policy's compute_seconds in backtest.json, the job records'), spread over the cores, since the policies replay side by
side (backtest_parallel.py). The replay runs in a child process (this file as a
script), as the demo loop's benchmark does, so a failing replay costs its figure only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from common import PYTHON, Figure, Goal, Sizes, child_result

GOAL_SECONDS = 600.0  # issue 13: under 10 minutes on 2 cores, for 26 weekly batches, all three policies
FULL_WEEKS = 26
POLICIES = ("configured", "never", "always")


def measure(sizes: Sizes) -> list[Figure]:
    weeks, policies = sizes.backtest_weeks, sizes.backtest_policies
    # The goal is stated for a 26-week history under the three policies; a smaller (quick) replay is context.
    goal = Goal("value", "<", GOAL_SECONDS) if weeks >= FULL_WEEKS and policies == POLICIES else None
    name = (f"backtest replay ({weeks} week{'s' if weeks != 1 else ''}, {len(policies)} "
            f"polic{'ies' if len(policies) != 1 else 'y'}) wall time")
    figure = Figure(name, "s", goal, "the replays' jobs' own compute time over the cores (the replays run side by "
                    "side: the longest replay's, or all of it over the cores, whichever is more)")
    measured = child_result(figure, "the backtest", lambda folder, result: [
        PYTHON, __file__, "--folder", str(folder), "--weeks", str(weeks), "--result", str(result),
        "--policies", ",".join(policies)], max(900, weeks * 240))
    if measured is not None:
        _judge(figure, measured)
    return [figure]


def _judge(figure: Figure, measured: dict[str, Any]) -> None:
    """The figure from the child's measurements, unless a replay gave up (a shorter replay is not the figure)."""
    policies = measured["policies"]
    compute, wall = [p["compute_seconds"] for p in policies.values()], measured["wall_seconds"]
    figure.data = measured
    problems = [f"{name}: {problem}" for name, p in policies.items() for problem in p["problems"]]
    if problems:
        figure.not_measured = "a replay did not finish as asked: " + "; ".join(problems)[:500]
        return
    figure.value, figure.floor, figure.runs = wall, max(max(compute), sum(compute) / measured["cores"]), 1
    for name, policy in policies.items():
        figure.notes.append(f"{name}: {policy['wall_seconds']:.1f} s wall, {policy['compute_seconds']:.1f} s in "
                            f"{policy['jobs']} jobs, {policy['retrains']} retrains")
    start, end = measured["load_average"]
    figure.notes.append(f"{measured['cpu_seconds']:.0f} s of CPU in all ({measured['cores']} cores); load average "
                        f"{start:.2f} at the start, {end:.2f} at the end (1 minute; the machine may be shared)")


def run(folder: Path, weeks: int, policies: list[str]) -> dict[str, Any]:
    # The child's imports: the parent needs none of the local cloud.
    from selfheal_bench.backtest import run_backtest
    from selfheal_bench.backtest_example import write_history
    from selfheal_bench.scenario import load_scenario

    scenario = load_scenario(write_history(folder / "history", weeks=weeks))
    load = os.getloadavg()[0]
    started, cpu = time.perf_counter(), _cpu_seconds()
    document = run_backtest(scenario, folder / "out", policies, echo=lambda line: None)
    ended = time.perf_counter()
    replays = document["replays"]
    return {"wall_seconds": ended - started, "cpu_seconds": _cpu_seconds() - cpu, "weeks": weeks,
            "load_average": [load, os.getloadavg()[0]], "cores": os.cpu_count(),
            "policies": {name: {"wall_seconds": replays[name]["seconds"],
                                "compute_seconds": document["policies"].get(name, {}).get("compute_seconds", 0.0),
                                "jobs": len(document["policies"].get(name, {}).get("jobs", [])),
                                "retrains": document["policies"].get(name, {}).get("retrains", 0),
                                "mean_metric": document["policies"].get(name, {}).get("mean_metric"),
                                "problems": document["policies"].get(name, {}).get(
                                    "problems", [replays[name].get("error", "")])}
                         for name in policies}}


def _cpu_seconds() -> float:
    """CPU time of this process and every process it waited for (the replays, their jobs and servers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description="replay a generated history; write its wall and compute times")
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--weeks", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    args.result.write_text(json.dumps(run(args.folder, args.weeks, args.policies.split(","))))


if __name__ == "__main__":
    main()
