"""The monitor and Preprocess on 1 vs 2 instances, on the same data (issue 12's scale figures).

Two instances run as the local cloud runs them (docs/aws-contract.md M3, M4, M8): a process per host, at once,
each with its own /opt/ml holding resourceconfig.json and its share of the capture files (dealt round robin in key
order, as ShardedByS3Key does here), each writing its share of the window; then `monitor.py --merge` on one
instance. The 2-instance time is the whole of it, hosts and merge; its throughput against one instance's is the
figure, and both reports must give the same verdicts. Preprocess alike: its hosts each summarise their share of the
uploads, then `preprocess.py --merge` on one instance writes the outputs, which must be the 1-instance job's, byte for
byte (the split, the transform, the baseline, the encoded files). Training's figure is scale_training.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from common import PYTHON, ROOT, Figure, Goal, Sizes, load_ml, median, run_child
from drift import job_folder, scenario_frame
from scale_training import measure as training_figures
from selfheal_bench.datagen import CHURN_CONFIG, churn_frame

SCALE_GOAL = Goal("ratio", ">=", 1.7)  # 2 instances' rows/s against 1 instance's
HOSTS = ["algo-1", "algo-2"]
MONITOR = str(ROOT / "ml" / "monitor.py")
PREPROCESS = str(ROOT / "ml" / "preprocess.py")
PREPROCESS_FILES = 8  # uploads in the window: 4 for each of 2 hosts
PREPROCESS_OUTPUTS = ("train", "validation", "test", "transform", "baseline")


def measure(sizes: Sizes) -> list[Figure]:
    return [_monitor(sizes), _preprocess(sizes), *training_figures(sizes)]


def _monitor(sizes: Sizes) -> Figure:
    rows = sizes.capture_rows[-1]
    baseline = _baseline(sizes)
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-scale-") as work:
        single = job_folder(Path(work), rows, baseline)
        hosts = {host: _host_folder(Path(work), single, host) for host in HOSTS}
        merge = _merge_folder(Path(work), single)
        cores = _instance_cores()
        one, two = [], []
        for _ in range(sizes.repeats):  # interleaved, so that other work on the machine slows both alike
            one.append(_run([single], cores=cores[:1] if cores else None))
            hosts_seconds = _run(list(hosts.values()), cores=cores)
            with _pinned(cores[0] if cores else None):  # the merge is a 1-instance job too
                two.append(hosts_seconds + _merge(hosts, merge))
        verdicts = [_verdicts(folder) for folder in (single, merge)]
    figure = Figure(f"monitor on 2 instances, {rows:,} capture rows", "rows/s", SCALE_GOAL,
                    "the same job on 1 instance", value=rows / median(two), floor=rows / median(one),
                    runs=sizes.repeats, data={"one_instance_seconds": one, "two_instances_seconds": two})
    if verdicts[0] != verdicts[1]:
        figure.error = f"2 instances found {verdicts[1]}, 1 instance {verdicts[0]}"
    figure.notes.append(f"verdicts {'identical' if verdicts[0] == verdicts[1] else 'DIFFER'}: "
                        f"{len(verdicts[0])} violations; the 2-instance time includes the 1-instance merge; "
                        + _placement(cores))
    return figure


def _placement(cores: list[set[int]] | None) -> str:
    if not cores:
        return f"not pinned (fewer than 2 usable CPUs): the hosts share this machine's {os.cpu_count()} cores"
    first, second = min(cores[0]), min(cores[1])
    return (f"each instance on a CPU of its own, as a SageMaker instance has its own: 1 instance on CPU {first}; "
            f"2 instances on CPUs {first} and {second} at once, then the merge on CPU {first} (sched_setaffinity; "
            "monitor.py sizes its pool by the CPUs it may use: 1 worker each)")


def _instance_cores() -> list[set[int]] | None:
    """A CPU for each of 2 emulated instances, so that 1 instance has what each of 2 has; None with fewer CPUs."""
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return [{cpu} for cpu in usable[:len(HOSTS)]] if len(usable) >= len(HOSTS) else None


@contextmanager
def _pinned(cpus: set[int] | None) -> Iterator[None]:
    """This process, and so every child it starts meanwhile, on `cpus` (None: as it is)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _preprocess(sizes: Sizes) -> Figure:
    rows = sizes.preprocess_rows
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-scale-prep-") as work:
        single = _preprocess_folder(Path(work) / "single", rows)
        hosts = {host: _preprocess_host(Path(work), single, host) for host in HOSTS}
        merge = Path(work) / "merge"
        shutil.copytree(single / "processing" / "input" / "config", merge / "processing" / "input" / "config")
        one, two = [], []
        runs = 1 if sizes.quick else sizes.repeats  # quick checks that it runs, and keeps the suite's seconds
        for _ in range(runs):  # interleaved, as for the monitor
            one.append(_run([single], PREPROCESS))
            two.append(_run(list(hosts.values()), PREPROCESS) + _merge(hosts, merge, PREPROCESS))
        differ = [name for name, content in _outputs(single).items() if _outputs(merge).get(name) != content]
    figure = Figure(f"Preprocess on 2 instances, {rows:,} rows in {PREPROCESS_FILES} uploads", "rows/s", SCALE_GOAL,
                    "the same job on 1 instance", value=rows / median(two), floor=rows / median(one),
                    runs=runs, data={"one_instance_seconds": one, "two_instances_seconds": two})
    if differ:
        figure.error = f"2 instances wrote other outputs than 1 instance: {', '.join(differ)}"
    figure.notes.append(f"outputs {'byte-identical' if not differ else 'DIFFER'} (split, transform, baseline, encoded "
                        "files); the 2-instance time includes the 1-instance merge, which fits the transform and "
                        "encodes and writes every row; the hosts share this machine's "
                        f"{os.cpu_count()} cores")
    return figure


def _preprocess_folder(root: Path, rows: int) -> Path:
    """A 1-instance Preprocess's /opt/ml: the config, and the window's rows in PREPROCESS_FILES CSV uploads."""
    inputs = root / "processing" / "input"
    (inputs / "config").mkdir(parents=True)
    (inputs / "config" / "config.json").write_text(json.dumps(CHURN_CONFIG))
    (inputs / "data").mkdir()
    frame = churn_frame(rows, seed=12)
    for number in range(PREPROCESS_FILES):
        frame.iloc[number::PREPROCESS_FILES].to_csv(inputs / "data" / f"upload-{number}.csv", index=False)
    return root


def _preprocess_host(work: Path, single: Path, host: str) -> Path:
    """A host's /opt/ml: the config, its share of the uploads (hard links), resourceconfig.json."""
    root = work / host
    inputs = single / "processing" / "input"
    shutil.copytree(inputs / "config", root / "processing" / "input" / "config")
    (root / "processing" / "input" / "data").mkdir()
    for path in sorted((inputs / "data").iterdir())[HOSTS.index(host)::len(HOSTS)]:
        os.link(path, root / "processing" / "input" / "data" / path.name)
    (root / "config").mkdir(parents=True)
    (root / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": HOSTS}))
    return root


def _outputs(opt_ml: Path) -> dict[str, bytes]:
    output = opt_ml / "processing" / "output"
    return {path.relative_to(output).as_posix(): path.read_bytes() for name in PREPROCESS_OUTPUTS
            for path in sorted((output / name).rglob("*")) if path.is_file()}


def _baseline(sizes: Sizes) -> tuple[dict[str, Any], dict[str, Any]]:
    return load_ml("baseline").build_baseline(scenario_frame(sizes.drift_reference_rows, 300, shift=False))


def _host_folder(work: Path, single: Path, host: str) -> Path:
    """A host's /opt/ml: the baseline, its share of the capture files (hard links), resourceconfig.json."""
    root = work / host
    inputs = single / "processing" / "input"
    shutil.copytree(inputs / "baseline", root / "processing" / "input" / "baseline")
    files = sorted(path for path in (inputs / "capture").rglob("*.jsonl"))
    for path in files[HOSTS.index(host)::len(HOSTS)]:
        target = root / "processing" / "input" / "capture" / path.relative_to(inputs / "capture")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, target)
    (root / "config").mkdir(parents=True)
    (root / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": HOSTS}))
    return root


def _merge_folder(work: Path, single: Path) -> Path:
    root = work / "merge"
    shutil.copytree(single / "processing" / "input" / "baseline", root / "processing" / "input" / "baseline")
    return root


def _env(opt_ml: Path) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("SELFHEAL_")} | {
        "SELFHEAL_OPT_ML": str(opt_ml)}


def _run(folders: list[Path], script: str = MONITOR, cores: list[set[int]] | None = None) -> float:
    """Wall time of one job whose hosts are `folders`, all started at once (host i on cores[i], if given)."""
    started = time.perf_counter()
    processes = []
    for number, folder in enumerate(folders):
        with _pinned(cores[number] if cores else None):
            processes.append(subprocess.Popen([PYTHON, script], env=_env(folder),  # noqa: S603
                                              stdout=subprocess.DEVNULL))
    for process in processes:
        if process.wait(600) != 0:
            raise RuntimeError(f"{Path(script).name} exited {process.returncode}")
    return time.perf_counter() - started


def _merge(hosts: dict[str, Path], merge: Path, script: str = MONITOR) -> float:
    """The hosts' shares uploaded to one prefix and downloaded for the merge (a copy here), then the merge."""
    partials = merge / "processing" / "input" / "partials"
    shutil.rmtree(partials, ignore_errors=True)
    partials.mkdir(parents=True)
    started = time.perf_counter()
    for folder in hosts.values():
        for path in (folder / "processing" / "output" / "partials").iterdir():
            shutil.copyfile(path, partials / path.name)
    job = run_child([PYTHON, script, "--merge"], _env(merge))
    if job.returncode != 0:
        raise RuntimeError(f"{Path(script).name} --merge failed: {job.tail()}")
    return time.perf_counter() - started


def _verdicts(opt_ml: Path) -> list[tuple[str, str]]:
    report = json.loads((opt_ml / "processing" / "output" / "report" / "constraint_violations.json").read_text())
    return sorted((v["feature_name"], v["constraint_check_type"]) for v in report["violations"])
