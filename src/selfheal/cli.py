"""selfheal's command line: the local cloud for people."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .scenario import ScenarioError, load_scenario


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfheal", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="run the application on this machine (no AWS account)")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    run = local_commands.add_parser("run", help="run a scenario file and write DIR/report.json")
    run.add_argument("scenario", type=Path)
    run.add_argument("--out", type=Path, required=True, help="folder for report.json, logs and job sandboxes")
    args = parser.parse_args(argv)

    if args.command == "local" and args.local_command == "run":
        return _local_run(args.scenario, args.out)
    parser.error("unknown command")
    return 2


def _local_run(scenario_path: Path, out: Path) -> int:
    try:
        scenario = load_scenario(scenario_path)
    except ScenarioError as exc:
        print(f"selfheal: invalid scenario: {exc}", file=sys.stderr)
        return 2
    from .runner import run_scenario  # the local cloud is heavy to import: only when a run starts

    report = run_scenario(scenario, out)
    print(f"report: {out / 'report.json'} ({len(report['runs'])} runs, {len(report['quarantined'])} quarantined)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
