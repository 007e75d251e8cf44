"""The monitor and Preprocess on 1 vs 2 instances, on the same data (issue 12's scale figures).

Two instances run as the local cloud runs them (docs/aws-contract.md M3, M4, M8): a process per host, at once,
each with its own /opt/ml holding resourceconfig.json and its share of the capture files (dealt round robin in key
order, as ShardedByS3Key does here), each writing its share of the window; then `monitor.py --merge` on one
instance. The 2-instance time is the whole of it, hosts and merge; its throughput against one instance's is the
figure, and both reports must give the same verdicts. Preprocess alike: its hosts each summarise their share of the
uploads, `preprocess.py --merge` on one instance fits the transform and writes the test rows and the plan, then the
hosts each encode a share of the rows files (`--encode`); the outputs must be the 1-instance job's (the merge's byte
for byte, the encoded files' rows line for line). Training's figure is scale_training.py's.
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

from common import PYTHON, ROOT, Figure, Goal, Sizes, load_ml, median, run_child, wait_exact
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


def _placement(cores: list[set[int]] | None, steps: str = "then the merge on CPU {first}",
               why: str = "; monitor.py sizes its pool by the CPUs it may use: 1 worker each") -> str:
    if not cores:
        return f"not pinned (fewer than 2 usable CPUs): the hosts share this machine's {os.cpu_count()} cores"
    first, second = min(cores[0]), min(cores[1])
    return (f"each instance on a CPU of its own, as a SageMaker instance has its own: 1 instance on CPU {first}; "
            f"2 instances on CPUs {first} and {second} at once, {steps.format(first=first, second=second)} "
            f"(sched_setaffinity{why})")


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
        cores = _instance_cores()
        one, two, phases = [], [], []
        runs = 1 if sizes.quick else sizes.repeats  # quick checks that it runs, and keeps the suite's seconds
        for _ in range(runs):  # interleaved, as for the monitor, and each instance on a CPU of its own alike
            one.append(_run([single], PREPROCESS, cores[:1] if cores else None))
            summaries = _run(list(hosts.values()), PREPROCESS, cores)
            with _pinned(cores[0] if cores else None):
                merged = _merge(hosts, merge, PREPROCESS)
            phases.append({"hosts": summaries, "merge": merged, "encode": _encode(Path(work), merge, cores)})
            two.append(sum(phases[-1].values()))
        differ = _differences(_outputs(single), _outputs(merge, *(Path(work) / f"encode-{host}" for host in HOSTS)))
    figure = Figure(f"Preprocess on 2 instances, {rows:,} rows in {PREPROCESS_FILES} uploads", "rows/s", SCALE_GOAL,
                    "the same job on 1 instance", value=rows / median(two), floor=rows / median(one),
                    runs=runs, data={"one_instance_seconds": one, "two_instances_seconds": two,
                                     "two_instances_phases": phases})
    if differ:
        figure.error = f"2 instances wrote other outputs than 1 instance: {', '.join(differ)}"
    figure.notes.append(f"outputs {'the same' if not differ else 'DIFFER'} (test, transform and baseline byte for "
                        "byte; each train and validation file the same encoded rows, whichever host wrote them); the "
                        "2-instance time is the hosts' summaries, the 1-instance merge and the hosts' encoding, in "
                        "turn; " + _placement(cores, "then the merge on CPU {first}, then the encoding on CPUs "
                                              "{first} and {second}", ""))
    return figure


def _encode(work: Path, merge: Path, cores: list[set[int]] | None) -> float:
    """EncodePreprocess: the merge's plan and transform, and the hosts' rows files dealt round robin in key order,
    downloaded (copies and links here) to each host, which encodes its share."""
    started = time.perf_counter()
    rows = sorted((merge / "processing" / "input" / "partials" / "rows").iterdir())
    folders = []
    for position, host in enumerate(HOSTS):
        root = work / f"encode-{host}"
        shutil.rmtree(root, ignore_errors=True)
        inputs = root / "processing" / "input"
        shutil.copytree(merge / "processing" / "input" / "config", inputs / "config")
        for name in ("plan", "transform"):
            shutil.copytree(merge / "processing" / "output" / name, inputs / name)
        (inputs / "rows").mkdir()
        for path in rows[position::len(HOSTS)]:
            os.link(path, inputs / "rows" / path.name)
        _resource_config(root, host)
        folders.append(root)
    _run(folders, PREPROCESS, cores, "--encode")
    return time.perf_counter() - started


def _differences(one: dict[str, bytes], two: dict[str, bytes]) -> list[str]:
    """What 2 instances wrote otherwise than 1: the merge's outputs byte for byte; train-<i> and validation as the
    same lines across the hosts' files (train-algo-1-1-of-2.csv and train-algo-2-1-of-2.csv hold train-1-of-2's)."""
    def lines(written: dict[str, bytes], part: str) -> list[bytes]:
        return sorted(line for name, content in written.items() if name.startswith(part + "/")
                      for line in content.splitlines())
    differ = [name for name, content in one.items() if name.split("/")[0] not in ("train", "validation")
              and two.get(name) != content]
    return differ + [part for part in ("train", "validation") if lines(one, part) != lines(two, part)]
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
    _resource_config(root, host)
    return root


def _resource_config(root: Path, host: str) -> None:
    """/opt/ml/config/resourceconfig.json, as SageMaker gives each host of a 2-instance job."""
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "resourceconfig.json").write_text(json.dumps({"current_host": host, "hosts": HOSTS}))


def _outputs(*opt_mls: Path) -> dict[str, bytes]:
    """Every file the jobs in `opt_mls` wrote, by name under output/."""
    written = {}
    for opt_ml in opt_mls:
        output = opt_ml / "processing" / "output"
        written |= {path.relative_to(output).as_posix(): path.read_bytes() for name in PREPROCESS_OUTPUTS
                    for path in sorted((output / name).rglob("*")) if path.is_file()}
    return written


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
    _resource_config(root, host)
    return root


def _merge_folder(work: Path, single: Path) -> Path:
    root = work / "merge"
    shutil.copytree(single / "processing" / "input" / "baseline", root / "processing" / "input" / "baseline")
    return root


def _env(opt_ml: Path) -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("SELFHEAL_")} | {
        "SELFHEAL_OPT_ML": str(opt_ml)}


def _run(folders: list[Path], script: str = MONITOR, cores: list[set[int]] | None = None, *args: str) -> float:
    """Wall time of one job whose hosts are `folders`, all started at once (host i on cores[i], if given)."""
    started = time.perf_counter()
    processes = []
    for number, folder in enumerate(folders):
        with _pinned(cores[number] if cores else None):
            processes.append(subprocess.Popen([PYTHON, script, *args], env=_env(folder),  # noqa: S603
                                              stdout=subprocess.DEVNULL))
    for process in processes:
        if wait_exact(process, 600) != 0:
            raise RuntimeError(f"{Path(script).name} {' '.join(args)} exited {process.returncode}")
    return time.perf_counter() - started


def _merge(hosts: dict[str, Path], merge: Path, script: str = MONITOR) -> float:
    """The hosts' shares uploaded to one prefix and downloaded for the merge (a copy here), then the merge."""
    partials = merge / "processing" / "input" / "partials"
    shutil.rmtree(partials, ignore_errors=True)
    partials.mkdir(parents=True)
    started = time.perf_counter()
    for folder in hosts.values():
        shutil.copytree(folder / "processing" / "output" / "partials", partials, dirs_exist_ok=True)
    job = run_child([PYTHON, script, "--merge"], _env(merge))
    if job.returncode != 0:
        raise RuntimeError(f"{Path(script).name} --merge failed: {job.tail()}")
    return time.perf_counter() - started


def _verdicts(opt_ml: Path) -> list[tuple[str, str]]:
    report = json.loads((opt_ml / "processing" / "output" / "report" / "constraint_violations.json").read_text())
    return sorted((v["feature_name"], v["constraint_check_type"]) for v in report["violations"])
