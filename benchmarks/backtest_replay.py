"""The backtest: `selfheal backtest`'s wall time for a generated history under the three policies, against the compute
time of the SageMaker jobs the replays ran.

The history is the README's worked example (selfheal_bench.backtest_example: weekly traffic with gradual concept drift,
labels three days later), 26 weeks in a full run. Issue 13's goal: the three policies of a 26-batch history replay
in under 10 minutes on 2 cores. The floor is what the replays cannot avoid: their jobs' own compute seconds (each
policy's compute_seconds in backtest.json, the job records'). The replay runs in a child process (this file as a
script), as the demo loop's benchmark does, so a failing replay costs its figure only.
"""

from __future__ import annotations

import argparse
import json
import os
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
    figure = Figure(name, "s", goal, "sum of the replays' jobs' own compute time")
    measured = child_result(figure, "the backtest", lambda folder, result: [
        PYTHON, __file__, "--folder", str(folder), "--weeks", str(weeks), "--result", str(result),
        "--policies", ",".join(policies)], max(900, weeks * 240))
    if measured is not None:
        _judge(figure, measured)
    return [figure]


def _judge(figure: Figure, measured: dict[str, Any]) -> None:
    """The figure from the child's measurements, unless a replay gave up (a shorter replay is not the figure)."""
    policies = measured["policies"]
    compute, wall = sum(p["compute_seconds"] for p in policies.values()), measured["wall_seconds"]
    figure.data = measured
    problems = [f"{name}: {problem}" for name, p in policies.items() for problem in p["problems"]]
    if problems:
        figure.not_measured = "a replay did not finish as asked: " + "; ".join(problems)[:500]
        return
    figure.value, figure.floor, figure.runs = wall, compute, 1
    for name, policy in policies.items():
        figure.notes.append(f"{name}: {policy['wall_seconds']:.1f} s wall, {policy['compute_seconds']:.1f} s in "
                            f"{policy['jobs']} jobs, {policy['retrains']} retrains")
    start, end = measured["load_average"]
    figure.notes.append(f"load average {start:.2f} at the start, {end:.2f} at the end (1 minute)")


def run(folder: Path, weeks: int, policies: list[str]) -> dict[str, Any]:
    # The child's imports: the parent needs none of the local cloud.
    from selfheal_bench.backtest import run_backtest
    from selfheal_bench.backtest_example import write_history
    from selfheal_bench.scenario import load_scenario

    scenario = load_scenario(write_history(folder / "history", weeks=weeks))
    starts: dict[str, float] = {}

    def echo(line: str) -> None:  # each policy's replay begins with this line (run_backtest)
        if line.startswith("\npolicy "):
            starts[line.removeprefix("\npolicy ")] = time.perf_counter()

    load = os.getloadavg()[0]
    started = time.perf_counter()
    document = run_backtest(scenario, folder / "out", policies, echo=echo)
    ended = time.perf_counter()
    bounds = [*(starts[name] for name in policies), ended]
    return {"wall_seconds": ended - started, "weeks": weeks, "load_average": [load, os.getloadavg()[0]],
            "policies": {name: {"wall_seconds": bounds[index + 1] - bounds[index],
                                "compute_seconds": document["policies"][name]["compute_seconds"],
                                "jobs": len(document["policies"][name]["jobs"]),
                                "retrains": document["policies"][name]["retrains"],
                                "problems": document["policies"][name]["problems"]}
                         for index, name in enumerate(policies)}}


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
