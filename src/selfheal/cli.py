"""selfheal's command line: the local cloud for people."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .scenario import ScenarioError, load_scenario

STATEMACHINES = Path(__file__).resolve().parents[2] / "statemachines"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfheal", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="run the application on this machine (no AWS account)")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    run = local_commands.add_parser("run", help="run a scenario file and write DIR/report.json")
    run.add_argument("scenario", type=Path)
    run.add_argument("--out", type=Path, required=True, help="folder for report.json, logs and job sandboxes")
    invoke = local_commands.add_parser(
        "invoke", help="invoke one function with an event, on a fresh local cloud (Docker-free `sam local invoke`)")
    invoke.add_argument("function", help="the function's logical id in template.yaml, e.g. IngestFunction")
    invoke.add_argument("-e", "--event", type=Path, required=True, help="event file, e.g. events/ingest/valid_csv.json")
    invoke.add_argument("--out", type=Path, default=Path("out/invoke"), help="folder for the local cloud's logs")
    demo = commands.add_parser("demo", help="the whole self-healing loop on generated data")
    demo.add_argument("--out", type=Path, default=Path("out/demo"), help="folder for data, report.json and logs")
    demo.add_argument("--rows", type=int, default=3000, help="rows in the first dataset")
    demo.add_argument("--seed", type=int, default=42)
    graph = commands.add_parser("graph", help="draw each state machine (SVG and Mermaid) from statemachines/")
    graph.add_argument("--out", type=Path, default=Path("docs/statemachines"))
    deploy = commands.add_parser("deploy", help="build and deploy to AWS (see `selfheal deploy --help`)",
                                 add_help=False)
    deploy.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    if args.command == "local" and args.local_command == "run":
        return _local_run(args.scenario, args.out)
    if args.command == "local" and args.local_command == "invoke":
        return _local_invoke(args.function, args.event, args.out)
    if args.command == "demo":
        from .demo import run_demo

        run_demo(args.out, rows=args.rows, seed=args.seed)
        return 0
    if args.command == "graph":
        from .graph_svg import write_graphs

        for path in write_graphs(args.out, STATEMACHINES):
            print(path)
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
    print(f"report: {out / 'report.json'} and {out / 'report.html'} "
          f"({len(report['runs'])} runs, {len(report['quarantined'])} quarantined)")
    return 0


def _local_invoke(function: str, event_path: Path, out: Path) -> int:
    try:
        event = json.loads(event_path.read_text())
    except (OSError, ValueError) as exc:
        print(f"selfheal: cannot read event {event_path}: {exc}", file=sys.stderr)
        return 2
    from .localcloud import LocalCloud
    from .localcloud.lambdas import FunctionError

    with LocalCloud(out) as cloud:
        try:
            cloud.router.spec(function)
        except KeyError:
            known = ", ".join(sorted(spec.logical_id for spec in cloud.functions()))
            print(f"selfheal: no function {function} in template.yaml (known: {known})", file=sys.stderr)
            return 2
        try:
            result = cloud.invoke(function, event)
        except FunctionError as err:
            print(json.dumps({"errorType": err.error_type, "errorMessage": err.message}, indent=2))
            return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
