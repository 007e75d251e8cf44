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
    demo = commands.add_parser("demo", help="the whole self-healing loop on generated data")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for data, report.json and logs")
    demo.add_argument("--rows", type=int, default=3000, help="rows in the first dataset")
    demo.add_argument("--seed", type=int, default=42)
    deploy = commands.add_parser("deploy", help="build and deploy to AWS (see `selfheal deploy --help`)",
                                 add_help=False)
    deploy.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "local" and args.local_command == "run":
        return _local_run(args.scenario, args.out)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, rows=args.rows, seed=args.seed)
        return 0
    if args.command == "deploy":
        from .deploy import main as deploy_main

        return deploy_main(args.rest)
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
