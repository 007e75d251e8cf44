"""Fixtures for the job scripts: seeded tabular data, and a sandbox /opt/ml in which a script runs as a
subprocess under SageMaker's container contract (SELFHEAL_OPT_ML, SM_* variables, --name value arguments).

Helpers reach the tests as fixtures (not imports), so they work under any pytest import mode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ML = Path(__file__).resolve().parents[2] / "ml"

TARGETS = {"binary": "churned", "multiclass": "tier", "regression": "spend"}
METRICS = {
    "binary": {"name": "auc", "threshold": 0.7},
    "multiclass": {"name": "accuracy", "threshold": 0.5},
    "regression": {"name": "rmse", "threshold": 20.0},
}
# Small and quick: enough rounds to learn, few enough to keep the suite fast.
HYPERPARAMETERS = {"num_round": 40, "early_stopping_rounds": 10, "max_depth": 3, "eta": 0.3}


def make_dataset(problem: str, rows: int = 800, seed: int = 7) -> pd.DataFrame:
    """Numeric and categorical features (with missing values) and a target the features explain."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, rows).round(1)
    visits = rng.poisson(3, rows).astype(np.int64)
    income = rng.lognormal(10, 0.4, rows).round(2)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], rows)
    active = rng.random(rows) < 0.6
    effect = pd.Series(plan).map({"basic": -1.0, "plus": 0.0, "pro": 1.5}).to_numpy()
    score = 0.06 * (age - 40) + 0.5 * (visits - 3) + effect + 1.0 * active + rng.normal(0, 0.4, rows)
    frame = pd.DataFrame(
        {"age": age, "visits": visits, "income": income, "plan": plan, "region": region, "active": active}
    )
    frame.loc[rng.random(rows) < 0.05, "age"] = np.nan
    frame.loc[rng.random(rows) < 0.03, "plan"] = None
    if problem == "binary":
        frame[TARGETS[problem]] = np.where(score > np.median(score), "yes", "no")
    elif problem == "multiclass":
        frame[TARGETS[problem]] = pd.cut(
            score, np.quantile(score, [0, 1 / 3, 2 / 3, 1]), labels=["low", "mid", "high"], include_lowest=True
        ).astype(str)
    else:
        frame[TARGETS[problem]] = (50 + 10 * score + rng.normal(0, 2, rows)).round(2)
    return frame


def run_script(
    script: Path, opt_ml: Path, args: list[str] | None = None, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a job script with the project's Python the way the container would, confined to `opt_ml`."""
    process = subprocess.run(
        [sys.executable, str(script), *(args or [])],
        env={**os.environ, "SELFHEAL_OPT_ML": str(opt_ml), **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if check and process.returncode != 0:
        raise AssertionError(f"{script.name} failed ({process.returncode}):\n{process.stdout}\n{process.stderr}")
    return process


def install_code(folder: Path) -> Path:
    """Put ml/ where SageMaker puts job code (processing input `code`, or the training source dir)."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in ML.glob("*.py"):
        shutil.copyfile(source, folder / source.name)
    return folder


@dataclass
class Sandbox:
    """One job's /opt/ml."""

    opt_ml: Path

    def input(self, *parts: str) -> Path:
        return self.opt_ml.joinpath("processing", "input", *parts)

    def output(self, *parts: str) -> Path:
        return self.opt_ml.joinpath("processing", "output", *parts)

    def write_json(self, path: Path, document: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document))
        return path

    def process(self, script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        code = install_code(self.input("code"))
        return run_script(code / script, self.opt_ml, check=check)

    def train(self, hyperparameters: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        """Train as SageMaker's XGBoost container does in script mode: channels and model dir from SM_*."""
        code = install_code(self.opt_ml / "code")
        env = {
            f"SM_CHANNEL_{name.upper()}": str(self.opt_ml / "input" / "data" / name)
            for name in ("train", "validation", "transform")
        }
        env["SM_MODEL_DIR"] = str(self.opt_ml / "model")
        # Values as the execution input holds them: JSON-encoded strings.
        args = [part for name, value in hyperparameters.items() for part in (f"--{name}", json.dumps(value))]
        return run_script(code / "train.py", self.opt_ml, args=args, env=env, check=check)

    def channel(self, name: str, source: Path) -> None:
        shutil.copytree(source, self.opt_ml / "input" / "data" / name, dirs_exist_ok=True)


def pack_model(model_dir: Path, tarball: Path) -> Path:
    """model.tar.gz as SageMaker makes it from SM_MODEL_DIR."""
    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return tarball


@dataclass
class Trained:
    """A dataset taken through Preprocess and Train."""

    problem: str
    config: dict[str, Any]
    data: pd.DataFrame
    prep: Sandbox
    training: Sandbox
    preprocess_stdout: str
    train_stdout: str

    @property
    def model_dir(self) -> Path:
        return self.training.opt_ml / "model"

    @property
    def tarball(self) -> Path:
        return self.training.opt_ml / "output" / "model.tar.gz"

    @property
    def test_rows(self) -> pd.DataFrame:
        return pd.read_csv(self.prep.output("test", "test.csv"))


def run_pipeline(root: Path, problem: str, data: pd.DataFrame, config: dict[str, Any]) -> Trained:
    prep = Sandbox(root / "prep")
    prep.write_json(prep.input("config", "config.json"), config)
    data_dir = prep.input("data")
    data_dir.mkdir(parents=True)
    if problem == "binary":
        # Two uploads of a training window: a CSV and a Parquet file, in nested folders.
        half = len(data) // 2
        (data_dir / "2024" / "a").mkdir(parents=True)
        data.iloc[:half].to_csv(data_dir / "2024" / "a" / "first.csv", index=False)
        data.iloc[half:].to_parquet(data_dir / "second.parquet", index=False)
    else:
        data.to_csv(data_dir / "upload.csv", index=False)
    prep_run = prep.process("preprocess.py")
    training = Sandbox(root / "train")
    for name in ("train", "validation", "transform"):
        training.channel(name, prep.output(name))
    hyperparameters = {"target": config["target"], "problem": problem, **HYPERPARAMETERS}
    train_run = training.train(hyperparameters)
    trained = Trained(problem, config, data, prep, training, prep_run.stdout, train_run.stdout)
    pack_model(trained.model_dir, trained.tarball)
    return trained


PIPELINES: dict[str, dict[str, Any]] = {
    "binary": {},  # split defaults: a config without "split"
    "multiclass": {"split": {"validation": 0.2, "test": 0.2, "seed": 3}},
    "regression": {},
}


def _pipeline(root: Path, problem: str, extra_config: dict[str, Any]) -> Trained:
    data = make_dataset(problem)
    if problem == "binary":
        data.loc[data.index[::40], TARGETS[problem]] = None  # unlabelled rows Preprocess must drop
    config = {"target": TARGETS[problem], "problem": problem, "metric": METRICS[problem], **extra_config}
    return run_pipeline(root, problem, data, config)


@pytest.fixture(scope="session")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """Each problem through Preprocess and Train; the three run side by side (their jobs are subprocesses)."""
    roots = {problem: tmp_path_factory.mktemp(problem) for problem in PIPELINES}
    with ThreadPoolExecutor(max_workers=len(PIPELINES)) as pool:
        running = {
            problem: pool.submit(_pipeline, roots[problem], problem, extra) for problem, extra in PIPELINES.items()
        }
        return {problem: future.result() for problem, future in running.items()}


@pytest.fixture(scope="session")
def binary_model(pipelines: dict[str, Trained]) -> Trained:
    return pipelines["binary"]


@pytest.fixture(scope="session")
def multiclass_model(pipelines: dict[str, Trained]) -> Trained:
    return pipelines["multiclass"]


@pytest.fixture(scope="session")
def regression_model(pipelines: dict[str, Trained]) -> Trained:
    return pipelines["regression"]


@pytest.fixture
def dataset() -> Callable[..., pd.DataFrame]:
    return make_dataset


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "opt_ml")


@pytest.fixture(scope="session")
def new_sandbox() -> Callable[[Path], Sandbox]:
    return Sandbox


@pytest.fixture(scope="session")
def pack() -> Callable[[Path, Path], Path]:
    return pack_model
