"""The product's wheel, built from pyproject.toml, holds the operator CLI and no bench code, and runs without the
bench: help works, and the commands that need the local cloud say how to install it."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_WORDS = ("selfheal_bench", "localcloud", "reliability", "iam", "runner", "scenario", "samples")


@pytest.fixture(scope="module")
def product_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out)], check=True, timeout=300, capture_output=True)
    (wheel,) = out.glob("selfheal-*.whl")
    return wheel


def test_the_product_wheel_holds_the_cli_and_no_bench_code(product_wheel):
    names = zipfile.ZipFile(product_wheel).namelist()
    code = [name for name in names if name.endswith(".py")]
    assert "selfheal/cli.py" in code and "selfheal/deploy.py" in code
    assert all(name.startswith("selfheal/") for name in code), code
    assert not [name for name in names if any(word in name for word in BENCH_WORDS)]
    assert not [name for name in names if name.startswith("selfheal_shared/")]  # the CLI does not import the layer


def test_the_installed_wheel_runs_without_the_bench_and_names_how_to_get_it(product_wheel, tmp_path):
    # Given the wheel alone in a fresh environment, outside any project (help and the refusal need none of its
    # dependencies: --no-deps, no network)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    clean = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    str(product_wheel)], check=True, timeout=300, env=clean, capture_output=True)
    check = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import importlib.util as u; "
                            "print(u.find_spec('selfheal_bench'))"], capture_output=True, text=True, env=clean)
    assert check.stdout == "None\n", check.stdout + check.stderr
    cli = [str(env_dir / "bin" / "selfheal")]
    # When the operator asks for help, and then for the demo
    helped = subprocess.run([*cli, "--help"], capture_output=True, text=True, env=clean, cwd=tmp_path, timeout=60)
    demo = subprocess.run([*cli, "demo", "--out", "out"], capture_output=True, text=True, env=clean, cwd=tmp_path,
                          timeout=60)
    # Then help runs, and the demo is refused as bad input, naming how to install the bench
    assert helped.returncode == 0 and "deploy" in helped.stdout, helped.stderr
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "pip install -e ./bench" in demo.stderr and "make setup" in demo.stderr
    assert "Traceback" not in demo.stderr
