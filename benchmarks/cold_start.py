"""Cold start: importing each function's handler in a fresh interpreter, against a bare `import boto3`.

Each run is a new process timed from spawn to exit, so interpreter start-up is in both the figure and the
floor. The environment is the one template.yaml gives the function (Globals merged with its own), plus the
variables the Lambda runtime sets, so Powertools behaves as in Lambda (the Tracer patches boto at import).
Runs are interleaved (floor, each function, repeat) so that load from other work on the machine hits all alike.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cfnlint.decode import decode
from common import PYTHON, ROOT, ChildRun, Figure, Goal, Sizes, median, run_child
from selfheal_bench.localcloud.cloud import LOCAL_PARAMETERS
from selfheal_bench.localcloud.template import Template, TemplateError

GOAL = Goal("ratio", "<=", 1.3)
FLOOR = "import boto3"
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+\d+ \| +(\S+)")


def functions(template: Template) -> dict[str, tuple[Path, dict[str, str]]]:
    """{logical id: (code folder, environment)} of every function in the template."""
    found = {}
    for logical_id in template.of_type("AWS::Serverless::Function"):
        props = template.function_properties(logical_id)
        variables = props.get("Environment", {}).get("Variables", {})
        code_dir = ROOT / template.resolve(props["CodeUri"])
        found[logical_id] = (code_dir, {key: _resolved(template, key, value) for key, value in variables.items()} | {
            "LAMBDA_TASK_ROOT": str(code_dir),
            "AWS_LAMBDA_FUNCTION_NAME": template.physical[logical_id],
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(template.resolve(props.get("MemorySize", 128))),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{template.resolve(props.get('Runtime', 'python3.12'))}",
            "_HANDLER": str(template.resolve(props.get("Handler", "app.lambda_handler"))),
        })
    return found


def _resolved(template: Template, key: str, value: object) -> str:
    try:
        return str(template.resolve(value))
    except TemplateError:  # e.g. a resource the local cloud has no name rule for: any text will do at import
        return f"bench-{key}"


def load_template() -> Template:
    body, _ = decode(str(ROOT / "template.yaml"))
    # Parameters without a default (image URIs and the like) get a stand-in: only their text reaches the env.
    required = {name: f"bench-{name}" for name, spec in (body or {}).get("Parameters", {}).items()
                if "Default" not in spec}
    return Template.load(ROOT / "template.yaml", "selfheal-bench", required | LOCAL_PARAMETERS)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    return {key: os.environ[key] for key in keep if key in os.environ} | {
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


def _module(handler: str) -> str:
    return handler.rsplit(".", 1)[0]


def measure(sizes: Sizes) -> list[Figure]:
    targets = functions(load_template())
    base = _base_env()
    commands = {FLOOR: ([PYTHON, "-c", "import boto3"], base, None)}
    for logical_id, (code_dir, env) in targets.items():
        path = os.pathsep.join([str(code_dir), str(ROOT / "layers" / "shared")])
        command = [PYTHON, "-c", f"import {_module(env['_HANDLER'])}"]
        commands[logical_id] = (command, base | env | {"PYTHONPATH": path}, code_dir)
    for command, env, cwd in commands.values():  # warm-up: bytecode caches and the page cache, not counted
        _check(run_child(command, env, cwd), command)
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(sizes.cold_start_runs):
        for name, (command, env, cwd) in commands.items():
            seconds[name].append(run_child(command, env, cwd).seconds)
    floor = median(seconds[FLOOR]) * 1000
    floor_imports: dict[str, int] | None = None
    figures = []
    for logical_id in targets:
        command, env, cwd = commands[logical_id]
        figure = Figure(f"cold start {logical_id}", "ms", GOAL, "fresh `python -c 'import boto3'`",
                        value=median(seconds[logical_id]) * 1000, floor=floor, runs=sizes.cold_start_runs)
        if figure.met is False and not sizes.quick:  # the diagnosis costs another process or two
            floor_imports = floor_imports or _import_times(_importtime(commands[FLOOR][0]), base, None)
            figure.notes.append("over the floor: " + imports_beyond_floor(command, env, cwd, floor_imports))
        figures.append(figure)
    return figures


def _check(run: ChildRun, command: list[str]) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {run.tail()}")


def imports_beyond_floor(command: list[str], env: dict[str, str], cwd: Path | None, floor: dict[str, int],
                         top: int = 5) -> str:
    """Where the time over the floor goes: self time of the modules the floor does not load, by package
    (one run of -X importtime)."""
    handler = _import_times(_importtime(command), env, cwd)
    packages: dict[str, int] = {}
    for module, microseconds in handler.items():
        if module not in floor:
            package = module.split(".")[0]
            packages[package] = packages.get(package, 0) + microseconds
    ranked = sorted(packages.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{package} {microseconds / 1000:.0f} ms" for package, microseconds in ranked)


def _importtime(command: list[str]) -> list[str]:
    return [command[0], "-X", "importtime", *command[1:]]


def _import_times(command: list[str], env: dict[str, str], cwd: Path | None) -> dict[str, int]:
    """{module: self time in microseconds} from -X importtime's report."""
    return {match.group(2): int(match.group(1))
            for match in _IMPORT_LINE.finditer(run_child(command, env, cwd).output)}
