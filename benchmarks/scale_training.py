"""Training on 1 vs 2 instances, on the same encoded data (issue 12's scale figure for training).

Preprocess encodes one generated churn dataset for 2 training instances (train/ as one file per instance); the same
training job then runs on 1 and on 2 instances through the local cloud's own job service (sagemaker_jobs.JobService,
cluster.py: a process per host, each with SageMaker's /opt/ml, resourceconfig.json and SM_HOSTS/SM_CURRENT_HOST, the
train channel ShardedByS3Key over the files, the tracker on the first host), as TrainingPipeline asks for it. Both
models are scored on the same held-out test rows with evaluate.py's own scoring; the figure is the difference of
their AUC (goal: within 0.01), and the two jobs' wall times are shown beside it for information.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from common import PYTHON, ROOT, Figure, Goal, Sizes, load_ml, median, run_child
from selfheal_bench.datagen import TARGET, churn_frame
from selfheal_bench.fixtures.containers import (
    ACCOUNT,
    BUCKET,
    REGION,
    aws_bucket,
    put_training_inputs,
    run_to_end,
    training_request,
)
from selfheal_bench.localcloud.container import ToolkitMissing, toolkit_python
from selfheal_bench.localcloud.faults import Faults
from selfheal_bench.localcloud.sagemaker_jobs import Job, JobService

INSTANCES = (1, 2)
AGREEMENT_GOAL = Goal("value", "<=", 0.01)  # |AUC on 2 instances - AUC on 1 instance|, same test rows
METRIC = "auc"
SEED = 12
HYPERPARAMETERS = {"num_round": 200, "early_stopping_rounds": 20, "max_depth": 4, "eta": 0.1}
JOB_TIMEOUT_SECONDS = 1800


def rows_for(sizes: Sizes) -> int:
    return 6_000 if sizes.quick else 200_000


def measure(sizes: Sizes) -> list[Figure]:
    rows = rows_for(sizes)
    agreement = Figure(f"training on 2 instances, {rows:,} rows: test {METRIC.upper()} difference", METRIC.upper(),
                       AGREEMENT_GOAL, "the 1-instance model (difference 0)")
    wall = Figure(f"training on 2 instances, {rows:,} rows: job wall time", "s", None, "the same job on 1 instance")
    try:
        toolkit_python()
    except ToolkitMissing as missing:
        agreement.not_measured = wall.not_measured = str(missing)
        return [agreement, wall]
    repeats = 1 if sizes.quick else sizes.repeats  # the metric does not vary between runs; the times do
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-train-") as folder, aws_bucket() as s3:
        work = Path(folder)
        prep = _preprocess(work, rows)
        put_training_inputs(s3, prep)
        jobs = JobService(work / "cloud", Faults(), REGION, ACCOUNT)
        try:
            runs = _train(jobs, repeats)
            scores = {count: _score(s3, job, prep, work) for count, job in runs["last"].items()}
        finally:
            jobs.shutdown()
    seconds = runs["seconds"]
    agreement.value, agreement.floor, agreement.runs = abs(scores[2] - scores[1]), 0.0, 1
    agreement.data = {"auc": {f"{count}_instance": score for count, score in scores.items()}}
    agreement.notes.append(f"test {METRIC.upper()} {scores[1]:.4f} on 1 instance, {scores[2]:.4f} on 2 (evaluate.py's "
                           f"scoring, the same {rows:,}-row dataset's test split)")
    wall.value, wall.floor, wall.runs = median(seconds[2]), median(seconds[1]), repeats
    wall.data = {"one_instance_seconds": seconds[1], "two_instances_seconds": seconds[2],
                 "host_seconds": runs["hosts"]}
    wall.notes.append(f"context, not SageMaker's times: the 2 hosts share this machine's {os.cpu_count()} cores, each "
                      "with its share of the OpenMP threads (cluster.host_threads), while 1 instance has all of them; "
                      "on SageMaker each instance has cores of its own")
    return [agreement, wall]


def _preprocess(work: Path, rows: int) -> Path:
    """preprocess.py's outputs for 2 training instances, from one generated dataset."""
    opt_ml = work / "prep"
    inputs = opt_ml / "processing" / "input"
    (inputs / "config").mkdir(parents=True)
    (inputs / "data").mkdir()
    (inputs / "config" / "config.json").write_text(json.dumps({
        "target": TARGET, "problem": "binary", "training": {"instance_count": max(INSTANCES)}}))
    churn_frame(rows, SEED).to_csv(inputs / "data" / "upload.csv", index=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SELFHEAL_")}
    job = run_child([PYTHON, str(ROOT / "ml" / "preprocess.py")], env | {"SELFHEAL_OPT_ML": str(opt_ml)})
    if job.returncode != 0:
        raise RuntimeError(f"preprocess.py failed: {job.tail()}")
    return opt_ml / "processing" / "output"


def _train(jobs: JobService, repeats: int) -> dict[str, Any]:
    """Each instance count `repeats` times, interleaved (other work on the machine slows both alike): every job's
    wall time, its hosts' times, and the last job of each count."""
    hyperparameters = {"target": TARGET, "problem": "binary", **HYPERPARAMETERS}
    seconds: dict[int, list[float]] = {count: [] for count in INSTANCES}
    hosts: dict[int, list[dict[str, Any]]] = {count: [] for count in INSTANCES}
    last: dict[int, Job] = {}
    for repeat in range(repeats):
        for count in INSTANCES:
            request = training_request(f"bench-train-{count}-{repeat}", count, hyperparameters)
            job = run_to_end(jobs, "training", request, JOB_TIMEOUT_SECONDS)
            if job.status != "Completed":
                raise RuntimeError(f"{job.name} {job.status}: {job.failure_reason}")
            _check_collective(job, count)
            seconds[count].append(round((job.ended - job.started).total_seconds(), 3))
            hosts[count].append([host.as_dict() for host in job.hosts])
            last[count] = job
    return {"seconds": seconds, "hosts": hosts, "last": last}


def _check_collective(job: Job, count: int) -> None:
    """A 2-instance job whose hosts trained apart would score like one host's half: not the figure."""
    if count == 1:
        return
    for rank, host in enumerate(job.hosts):
        if f"train: worker {rank} of {count} on {host.name}" not in host.log.read_text():
            raise RuntimeError(f"{job.name}: {host.name} did not join XGBoost's collective as worker {rank}")


def _score(s3: Any, job: Job, prep: Path, work: Path) -> float:
    """The job's model.tar.gz scored on the test split by evaluate.py."""
    tarball = work / f"{job.name}.tar.gz"
    s3.download_file(BUCKET, job.model_artifacts.split("/", 3)[3], str(tarball))
    rows = pd.read_csv(prep / "test" / "test.csv")
    return float(load_ml("evaluate").score(tarball, rows, "binary", TARGET)[METRIC])

