"""Train job (SageMaker XGBoost framework container, script mode).

Arguments  hyperparameters as `--name value` pairs, values JSON-encoded or plain: target, problem,
           num_round (200), early_stopping_rounds (20), checkpoint_every (10), and any XGBoost parameter
           (max_depth, eta, subsample, ...), passed through to xgboost.train.
Channels   SM_CHANNEL_TRAIN, SM_CHANNEL_VALIDATION (CSV, no header, label first),
           SM_CHANNEL_TRANSFORM (transform.json); defaults <OPT_ML>/input/data/<channel>.
Output     SM_MODEL_DIR (default <OPT_ML>/model): xgboost-model (JSON), transform.json, and code/inference.py with
           code/features.py: everything the endpoint needs, so model.tar.gz serves on its own. The serving
           container has no network (isolation), so its code travels inside the model, under code/, where
           RegisterModel's SAGEMAKER_SUBMIT_DIRECTORY (/opt/ml/model/code) points, as the SageMaker SDK packs it.
Spot       checkpoints in <OPT_ML>/checkpoints every checkpoint_every rounds; a restarted job resumes
           from the newest one and trains only the remaining rounds.
Instances  on several (SM_HOSTS, SM_CURRENT_HOST: the training toolkit's, from resourceconfig.json), XGBoost trains
           distributed with its own collective, as the XGBoost container's distributed path does (distributed.py):
           a tracker on the first of the sorted hosts, on port 9099, a worker on every host, each on its shard of
           the train channel (ShardedByS3Key) and the whole validation channel, so every worker sees the same
           validation metric and stops at the same round. Only the first host checkpoints and saves the model:
           SageMaker gathers every host's model directory into one model.tar.gz.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from xgboost.tracker import RabitTracker

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # features.py ships beside this script in the source dir
    sys.path.insert(0, str(HERE))

from features import FeatureTransform  # noqa: E402

OPT_ML = Path(os.environ.get("SELFHEAL_OPT_ML", "/opt/ml"))
CHECKPOINTS = OPT_ML / "checkpoints"
CHECKPOINT = re.compile(r"^xgboost-checkpoint\.(\d+)$")
KEEP_CHECKPOINTS = 2
LOG_EVERY = 10
SERVING_FILES = ("features.py", "inference.py")
# The SageMaker Python SDK's place for inference code inside model.tar.gz (utils.py, _create_or_update_code_dir).
SERVING_CODE = "code"
# Hyperparameters this script consumes; everything else goes to XGBoost.
OWN = {"target": None, "problem": None, "num_round": 200, "early_stopping_rounds": 20, "checkpoint_every": 10}
# The XGBoost container's tracker port (distributed.py): each instance is the job's alone, so a fixed port is free.
TRACKER_PORT = 9099
# How long the hosts may take to find each other, and to part (the tracker's and the workers' bootstrap timeout).
BOOTSTRAP_SECONDS = 600
# A worker may reach the tracker before it listens (the first host reads its shard first). XGBoost sleeps 2k s before
# its k-th retry and gives up after dmlc_retry tries, 3 by default: 6 s. 25 tries span 2 + 4 + ... + 48 = 600 s.
CONNECT_RETRIES = 25
OBJECTIVES: dict[str, dict[str, Any]] = {
    # XGBoost early-stops on the last eval metric: a proper scoring rule, smoother than auc or error.
    "binary": {"objective": "binary:logistic", "eval_metric": ["auc", "logloss"]},
    "multiclass": {"objective": "multi:softprob", "eval_metric": ["merror", "mlogloss"]},
    "regression": {"objective": "reg:squarederror", "eval_metric": ["rmse"]},
}


def _decode(value: str) -> Any:
    """SageMaker passes hyperparameters as strings, often JSON-encoded ("\\"binary\\"", "200")."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def parse_hyperparameters(argv: list[str]) -> dict[str, Any]:
    if len(argv) % 2:
        raise ValueError(f"hyperparameters must come as --name value pairs, got {argv}")
    values: dict[str, Any] = {}
    for position in range(0, len(argv), 2):
        flag, value = argv[position], argv[position + 1]
        if not flag.startswith("--"):
            raise ValueError(f"expected --name, got {flag!r}")
        name = flag[2:]
        # sagemaker_* and _tuning_* entries are the platform's, not XGBoost's.
        if not name.startswith(("sagemaker_", "_")):
            values[name] = _decode(value)
    return values


@dataclass(frozen=True)
class Hosts:
    """The job's instances, as SageMaker names them (algo-1, ...), and which one this process runs on."""

    current: str
    names: list[str]

    @property
    def first(self) -> str:
        return sorted(self.names)[0]  # the container's master: the first host name in sorted order

    @property
    def is_first(self) -> bool:
        return self.current == self.first

    @property
    def distributed(self) -> bool:
        return len(self.names) > 1


def job_hosts() -> Hosts:
    """SM_HOSTS and SM_CURRENT_HOST, as the training toolkit sets them; one host when they are absent."""
    names = json.loads(os.environ.get("SM_HOSTS", '["algo-1"]'))
    return Hosts(os.environ.get("SM_CURRENT_HOST", names[0]), names)


def worker_args(address: str, port: int, task_id: str) -> dict[str, Any]:
    """A worker's collective settings: the tracker it reports to, and how long it may wait for it."""
    return {"dmlc_communicator": "rabit", "dmlc_tracker_uri": address, "dmlc_tracker_port": port,
            "dmlc_task_id": task_id, "dmlc_timeout": BOOTSTRAP_SECONDS, "dmlc_retry": CONNECT_RETRIES}


@contextmanager
def collective(hosts: Hosts) -> Iterator[None]:
    """XGBoost's collective across the hosts, while the block runs: xgb.train then trains one model on every host's
    rows. The first host runs the tracker every worker (this process included) reports to; nothing on one host."""
    if not hosts.distributed:
        yield
        return
    address = socket.gethostbyname(hosts.first)
    tracker = None
    if hosts.is_first:
        tracker = RabitTracker(n_workers=len(hosts.names), host_ip=address, port=TRACKER_PORT, sortby="task",
                               timeout=BOOTSTRAP_SECONDS)
        tracker.start()
    with xgb.collective.CommunicatorContext(**worker_args(address, TRACKER_PORT, hosts.current)):
        print(f"train: worker {xgb.collective.get_rank()} of {xgb.collective.get_world_size()} on {hosts.current}",
              flush=True)
        yield
    if tracker is not None:
        tracker.wait_for(BOOTSTRAP_SECONDS)


def channel(name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", str(OPT_ML / "input" / "data" / name)))


def csv_files(folder: Path) -> list[Path]:
    """The channel's CSV files with rows: Preprocess's encoding hosts each write every training instance's file,
    some maybe empty."""
    return [path for path in sorted(folder.rglob("*.csv")) if path.stat().st_size]


def read_matrix(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    files = csv_files(folder)
    if not files:
        raise FileNotFoundError(f"no rows in the CSV files of channel {folder}")
    rows = pd.concat([pd.read_csv(path, header=None, dtype=np.float32) for path in files], ignore_index=True)
    return rows.iloc[:, 1:].to_numpy(), rows.iloc[:, 0].to_numpy()


def xgboost_params(problem: str, transform: FeatureTransform, extra: dict[str, Any]) -> dict[str, Any]:
    required = {"objective": OBJECTIVES[problem]["objective"]}
    if problem == "multiclass":
        required["num_class"] = len(transform.labels or [])
    return {"eval_metric": OBJECTIVES[problem]["eval_metric"], "tree_method": "hist", **extra, **required}


def newest_checkpoint(folder: Path) -> Path | None:
    found = [
        (int(match.group(1)), path)
        for path in folder.glob("xgboost-checkpoint.*")
        if (match := CHECKPOINT.match(path.name))
    ]
    return max(found)[1] if found else None


def load_booster(path: Path) -> xgb.Booster:
    booster = xgb.Booster()
    booster.load_model(bytearray(path.read_bytes()))  # from a buffer: format sniffed, whatever the file name
    return booster


class Checkpoint(xgb.callback.TrainingCallback):
    """Saves the booster every `every` rounds, atomically, keeping the newest few (SageMaker syncs the folder)."""

    def __init__(self, folder: Path, every: int) -> None:
        super().__init__()
        self.folder, self.every = folder, every

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        rounds = model.num_boosted_rounds()
        if rounds % self.every == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f".xgboost-checkpoint.{rounds}.partial"
            partial.write_bytes(bytes(model.save_raw(raw_format="ubj")))
            os.replace(partial, self.folder / f"xgboost-checkpoint.{rounds}")
            saved = sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := CHECKPOINT.match(p.name)))
            for old in saved[:-KEEP_CHECKPOINTS]:
                (self.folder / f"xgboost-checkpoint.{old}").unlink()
        return False


class Progress(xgb.callback.TrainingCallback):
    """Logs `[round] validation-<metric>:<value>` by absolute round, so lines stay right after a resume."""

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        rounds = model.num_boosted_rounds()
        if rounds == 1 or rounds % LOG_EVERY == 0:
            print(f"[{rounds}]\t" + "\t".join(_latest(evals_log)), flush=True)
        return False


def _latest(evals_log: dict) -> list[str]:
    return [
        f"{data}-{metric}:{values[-1]:.6f}" for data, metrics in evals_log.items() for metric, values in metrics.items()
    ]


def train(params: dict[str, Any], train: xgb.DMatrix, validation: xgb.DMatrix, settings: dict[str, Any],
          checkpoint: bool = True) -> xgb.Booster:
    """Train from the newest checkpoint; `checkpoint` False on every host but the first (they hold the same model)."""
    resume_from = newest_checkpoint(CHECKPOINTS)
    booster = load_booster(resume_from) if resume_from else None
    done = booster.num_boosted_rounds() if booster else 0
    remaining = int(settings["num_round"]) - done
    print(
        f"train: {'resuming from ' + resume_from.name if resume_from else 'starting'} at round {done}, "
        f"{max(remaining, 0)} rounds to go"
    )
    if remaining > 0:
        saving = [Checkpoint(CHECKPOINTS, int(settings["checkpoint_every"]))] if checkpoint else []
        evals_log: dict = {}
        booster = xgb.train(
            params,
            train,
            num_boost_round=remaining,
            evals=[(validation, "validation")],
            early_stopping_rounds=int(settings["early_stopping_rounds"]),
            evals_result=evals_log,
            xgb_model=booster,
            verbose_eval=False,
            callbacks=[Progress(), *saving],
        )
        metrics = "\t".join(_latest(evals_log))
        print(f"final\t{metrics}\tbest_round:{best_rounds(booster)}", flush=True)
    # Serving uses every tree in the saved model: keep those up to the best validation round.
    return booster[: best_rounds(booster)]


def best_rounds(booster: xgb.Booster) -> int:
    best = booster.attr("best_iteration")
    return int(best) + 1 if best is not None else booster.num_boosted_rounds()


def save_model(model_dir: Path, booster: xgb.Booster, transform_file: Path) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "xgboost-model").write_bytes(bytes(booster.save_raw(raw_format="json")))
    shutil.copyfile(transform_file, model_dir / "transform.json")
    code = model_dir / SERVING_CODE
    code.mkdir(exist_ok=True)
    for name in SERVING_FILES:
        shutil.copyfile(HERE / name, code / name)


def main(argv: list[str]) -> None:
    hyperparameters = parse_hyperparameters(argv)
    settings = {name: hyperparameters.pop(name, default) for name, default in OWN.items()}
    transform_file = channel("transform") / "transform.json"
    transform = FeatureTransform.load(transform_file)
    for name in ("problem", "target"):
        wanted, fitted = settings[name], getattr(transform, name)
        # Compared as text: decoding turns a column named "2024" into a number.
        if wanted is not None and str(wanted) != fitted:
            raise ValueError(f"hyperparameter {name}={wanted!r} but the transform was fitted for {fitted!r}")
    problem = transform.problem
    hosts = job_hosts()
    if hosts.distributed and not csv_files(channel("train")):
        raise FileNotFoundError(f"host {hosts.current} got no train rows: the train channel needs at least one file "
                                f"with rows per instance ({len(hosts.names)})")
    x_train, y_train = read_matrix(channel("train"))
    x_valid, y_valid = read_matrix(channel("validation"))
    for part, matrix in (("train", x_train), ("validation", x_valid)):
        if matrix.shape[1] != len(transform.features):
            raise ValueError(f"{part} has {matrix.shape[1]} feature columns, transform.json {len(transform.features)}")
    params = xgboost_params(problem, transform, hyperparameters)
    print(f"train: {problem}, {len(y_train)} train / {len(y_valid)} validation rows, {x_train.shape[1]} features")
    print(f"train: params {json.dumps(params, sort_keys=True)}, settings {json.dumps(settings, sort_keys=True)}")
    with collective(hosts):
        booster = train(params, xgb.DMatrix(x_train, label=y_train), xgb.DMatrix(x_valid, label=y_valid), settings,
                        checkpoint=hosts.is_first)
    if not hosts.is_first:
        print(f"train: {hosts.current} done; {hosts.first} saves the model")
        return
    model_dir = Path(os.environ.get("SM_MODEL_DIR", str(OPT_ML / "model")))
    save_model(model_dir, booster, transform_file)
    print(f"train: saved {booster.num_boosted_rounds()} rounds to {model_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
