"""selfheal's command line: the local cloud for people.

Exit codes, the same for every command: 0 when everything ran as asked, 1 when a run failed, an upload
was quarantined or traffic errored (report.json's "problems" says which), 2 for bad input refused before
anything ran, 130 when interrupted (Ctrl-C; the local cloud is stopped first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from . import deploy
from .console import library_logs_to
from .outdir import WRITTEN, OutFolderError, prepare_out
from .project import ProjectNotFound, find_project

OK, FAILED, BAD_INPUT, INTERRUPTED = 0, 1, 2, 130
# Neither distribution is on PyPI (an unrelated package there is named selfheal): both install from a checkout.
BENCH_MISSING = ("selfheal {command}: needs the bench (the local cloud), which is not installed: in a checkout of "
                 "selfheal, `make setup`, or pip install -e ./bench")


class BenchMissing(Exception):
    """A command that runs on the local cloud, without the bench installed: bad input (exit 2)."""


def bench(command: str) -> None:
    """Refuse `command` clearly when selfheal_bench is not installed; the commands import it lazily."""
    try:
        import selfheal_bench  # noqa: F401 - only whether it is there
    except ModuleNotFoundError as missing:
        if missing.name != "selfheal_bench":
            raise
        raise BenchMissing(BENCH_MISSING.format(command=command)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfheal", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n")[1])
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
    demo.add_argument("--rows", type=int, default=3000, help="rows in the first dataset (at least 1000)")
    demo.add_argument("--seed", type=int, default=42)
    backtest = commands.add_parser(
        "backtest", help="replay a scenario's history (steps with `at`) under retraining policies; "
                         "write DIR/backtest.json and DIR/backtest.html")
    backtest.add_argument("scenario", type=Path)
    backtest.add_argument("--out", type=Path, required=True, help="folder for backtest.json, backtest.html and "
                                                                   "each policy's report and logs")
    backtest.add_argument("--policies", default="configured,never,always",
                          help="comma-separated, of configured, never, always (default: all three)")
    graph = commands.add_parser("graph", help="draw each state machine (SVG and Mermaid) from statemachines/")
    graph.add_argument("--out", type=Path, default=Path("docs/statemachines"))
    deploy.add_arguments(commands.add_parser("deploy", help="build and deploy to AWS with the job code it runs",
                                             description=deploy.DESCRIPTION))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BenchMissing as error:
        print(error, file=sys.stderr)
        return BAD_INPUT
    except (OutFolderError, ProjectNotFound) as error:
        print(f"selfheal: {error}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt:
        print("\nselfheal: interrupted; the local cloud was stopped", file=sys.stderr)
        return INTERRUPTED


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "local" and args.local_command == "run":
        return _local_run(args.scenario, args.out)
    if args.command == "local" and args.local_command == "invoke":
        return _local_invoke(args.function, args.event, args.out)
    if args.command == "backtest":
        return _backtest(args.scenario, args.out, args.policies)
    if args.command == "demo":
        return _demo(args.out, args.rows, args.seed)
    if args.command == "graph":
        from .graph_svg import write_graphs

        for path in write_graphs(args.out.resolve(), find_project() / "statemachines"):
            print(path)
        return OK
    return deploy.run(args)


def _local_run(scenario_path: Path, out: Path) -> int:
    bench("local run")
    from selfheal_bench.scenario import ScenarioError, load_scenario  # the local cloud (heavy): only when needed

    try:
        scenario = load_scenario(scenario_path.resolve())
    except ScenarioError as error:
        print(f"selfheal: invalid scenario: {error}", file=sys.stderr)
        return BAD_INPUT
    out = _out_folder(out)
    from selfheal_bench.runner import run_scenario

    with _library_logs(out):
        report = run_scenario(scenario, out)
    return _verdict(report, out)


def _backtest(scenario_path: Path, out: Path, policies_text: str) -> int:
    bench("backtest")
    from selfheal_bench.backtest import POLICIES, BacktestError, check, parse_policies, run_backtest
    from selfheal_bench.backtest_figures import Prices
    from selfheal_bench.scenario import ScenarioError, load_scenario

    try:
        policies = parse_policies(policies_text)
        scenario = load_scenario(scenario_path.resolve())
        check(scenario, policies, Prices.load())
    except (ScenarioError, BacktestError) as error:
        print(f"selfheal: invalid backtest: {error}", file=sys.stderr)
        return BAD_INPUT
    out = _out_folder(out, WRITTEN + ("backtest.json", "backtest.html", *POLICIES))
    document = run_backtest(scenario, out, policies)  # each replay logs in out/<policy>/
    print()
    failed = False
    for name in policies:
        result = document["policies"].get(name)
        print(describe_policy(name, result) if result else f"{name:10} the replay failed")
        for line in result["problems"] if result else [document["replays"][name]["error"]]:
            failed = True
            print(f"  - problem: {line}")
    print(f"\nbacktest: {out / 'backtest.json'} and {out / 'backtest.html'}; each policy's report.json and logs "
          f"in {out}/<policy>/")
    return FAILED if failed else OK


def describe_policy(name: str, result: dict[str, Any]) -> str:
    """One line a person can act on: what the policy cost, and what it earned."""
    mean = result["mean_metric"]
    metric = f"mean {result['metric']} {mean:.3f}" if mean is not None else "no labelled batch scored"
    return (f"{name:10} {result['retrains']} retrain(s), {metric}, {result['hours_below_threshold']:.0f} h below "
            f"{result['threshold']:g}, {result['compute_seconds']:.0f} s compute, ~${result['cost_usd']:.2f}")


def _demo(out: Path, rows: int, seed: int) -> int:
    bench("demo")
    from selfheal_bench.demo import MIN_ROWS, run_demo

    if rows < MIN_ROWS:
        print(f"selfheal demo: --rows {rows} is too few: the demo's model trains once {MIN_ROWS} new rows "
              f"have arrived (its trigger.min_new_rows), so --rows must be at least {MIN_ROWS}", file=sys.stderr)
        return BAD_INPUT
    out = _out_folder(out)
    with _library_logs(out):
        report = run_demo(out, rows=rows, seed=seed)
    return _verdict(report, out)


def _local_invoke(function: str, event_path: Path, out: Path) -> int:
    bench("local invoke")
    from selfheal_bench.localcloud.template import function_ids

    known = function_ids(find_project() / "template.yaml")
    if function not in known:
        print(f"selfheal: no function {function} in template.yaml (known: {', '.join(sorted(known))})",
              file=sys.stderr)
        return BAD_INPUT
    try:
        event = json.loads(event_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"selfheal: cannot read event {event_path}: {exc}", file=sys.stderr)
        return BAD_INPUT
    out = _out_folder(out)
    from selfheal_bench.localcloud import LocalCloud
    from selfheal_bench.localcloud.lambdas import FunctionError
    from selfheal_bench.samples import seed

    with _library_logs(out), LocalCloud(out / "cloud") as cloud:
        seeded = seed(cloud, function, event_path, event)
        if seeded:  # on stderr: stdout is the function's answer alone, as `sam local invoke` prints it
            print(f"the local account holds what {event_path.name} refers to:", file=sys.stderr)
            for line in seeded:
                print(f"  {line}", file=sys.stderr)
        try:
            result = cloud.invoke(function, event)
        except FunctionError as err:
            print(json.dumps({"errorType": err.error_type, "errorMessage": err.message}, indent=2))
            return FAILED
    print(json.dumps(result, indent=2, default=str))
    return OK


def _out_folder(out: Path, written: tuple[str, ...] = WRITTEN) -> Path:
    try:
        return prepare_out(out, written)
    except OSError as error:
        raise OutFolderError(f"--out {out}: {error.strerror or error}") from None


def _library_logs(out: Path) -> contextlib.AbstractContextManager[Path]:
    return library_logs_to(out / "cloud" / "logs")


def _verdict(report: dict[str, Any], out: Path) -> int:
    """Print what went wrong, one line each, and where the report is; the exit code says the same."""
    found = report["problems"]
    if found:
        print(f"\n{len(found)} problem{'s' if len(found) != 1 else ''}:")
        for line in found:
            print(f"  - {line}")
    print(f"\nreport: {out / 'report.json'} and {out / 'report.html'} "
          f"({len(report['runs'])} runs, {len(report['quarantined'])} quarantined); logs in {out / 'cloud' / 'logs'}")
    return FAILED if found else OK


if __name__ == "__main__":
    sys.exit(main())
