"""Package size: what `sam build` puts in each function's package and in the shared layer, unzipped.

The floor is the source folder sam build packages (CodeUri / ContentUri): what is ours, before dependencies.
AWS's Powertools layer is AWS's, not counted. sam runs in a temporary folder, so no .aws-sam/ is left behind.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

from cfnlint.decode import decode
from common import ROOT, Figure, Goal, run_child

FUNCTION_GOAL = Goal("value", "<", 5.0)  # MB on top of the layers
LAYER_GOAL = Goal("value", "<", 250.0)  # Lambda's limit for a function and all its layers, unzipped
FLOOR = "source folder"
MB = 1024 * 1024
_SKIP = {"__pycache__", ".pytest_cache"}
_SOURCE_KEY = {"AWS::Serverless::Function": "CodeUri", "AWS::Serverless::LayerVersion": "ContentUri"}


def sam_command() -> list[str] | None:
    sam = ROOT / ".venv-sam" / "bin" / "sam"
    found = str(sam) if sam.exists() else shutil.which("sam")
    return [found] if found else None


def python312() -> str | None:
    """The folder of a python3.12 for sam to build with: pyenv's own (its shim answers only when 3.12 is
    selected), else one on PATH."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")))
    found = candidates[-1] if candidates else shutil.which("python3.12")
    return str(Path(found).parent) if found else None


def size_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not _SKIP & set(path.parts):
            total += path.stat().st_size
    return total / MB


def measure() -> list[Figure]:
    sam, python_dir = sam_command(), python312()
    if not sam or not python_dir:
        why = "the SAM CLI (.venv-sam, `make setup`)" if not sam else "python3.12 for sam build"
        return [Figure("package size", "MB", FUNCTION_GOAL, FLOOR, not_measured=f"{why} is not installed")]
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-sam-") as work:
        build = Path(work) / "build"
        env = os.environ | {"PATH": f"{python_dir}{os.pathsep}{os.environ['PATH']}",
                            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                            "SAM_CLI_TELEMETRY": "0"}
        command = [*sam, "build", "--template-file", str(ROOT / "template.yaml"), "--base-dir", str(ROOT),
                   "--build-dir", str(build), "--cache-dir", str(Path(work) / "cache")]
        run = run_child(command, env, cwd=Path(work))  # cwd: sam's own .aws-sam/ lands in the temp folder
        if run.returncode != 0:
            return [Figure("package size", "MB", FUNCTION_GOAL, FLOOR, not_measured=f"sam build failed: {run.tail()}")]
        return _figures(build)


def _figures(build: Path) -> list[Figure]:
    """One figure per function and layer that sam built, beside the source folder the template points it at."""
    source, _ = decode(str(ROOT / "template.yaml"))
    figures = []
    for logical_id, resource in (source or {}).get("Resources", {}).items():
        kind = resource.get("Type")
        if kind not in _SOURCE_KEY or not (build / logical_id).is_dir():
            continue
        uri = resource.get("Properties", {}).get(_SOURCE_KEY[kind])
        goal = FUNCTION_GOAL if kind == "AWS::Serverless::Function" else LAYER_GOAL
        figures.append(Figure(f"package size {logical_id}", "MB", goal, FLOOR, value=size_mb(build / logical_id),
                              floor=size_mb(ROOT / uri) if isinstance(uri, str) else None, runs=1))
    return figures
