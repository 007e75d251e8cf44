"""What every benchmark shares: the figure record and its goal, run sizes, medians, child processes."""

from __future__ import annotations

import cProfile
import importlib.util
import json
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable  # the project's .venv: what the local cloud and the tests run with
# evidently 0.7 and NannyML 0.13 (the comparisons) need pandas < 3: an environment of their own.
BENCH_VENV = ROOT / ".venv-bench"
BENCH_PACKAGES = ["evidently==0.7.23", "nannyml==0.13.1", "statsmodels", "pandas<3", "numpy", "pyarrow"]
# The command the Makefile owns; run.py runs the same steps when the marker is missing.
BENCH_ENV_COMMAND = ("python3 -m venv .venv-bench && .venv-bench/bin/pip install --quiet "
                     + " ".join(f"'{p}'" for p in BENCH_PACKAGES) + " && touch .venv-bench/.installed")


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs: full for the README's table, quick for the test."""

    quick: bool
    repeats: int  # timed runs per measurement; the figure is their median
    cold_start_runs: int
    drift_rows: int
    drift_reference_rows: int
    capture_rows: tuple[int, int]  # the monitor end to end, at two sizes (peak memory must not grow)
    demo_rows: int  # the demo's first upload (its trigger policy trains from 1,000 rows)
    call_seconds: float  # a timed run repeats a fast call until it lasts this long
    estimation_rows: tuple[int, int]  # performance estimation at two sizes (peak memory must not grow)
    backtest_weeks: int  # the replayed history's weekly batches (issue 13's goal is for 26)
    backtest_policies: tuple[str, ...]  # the goal is for all three; quick replays one, to check the replay runs
    preprocess_rows: int  # Preprocess on 1 vs 2 instances: the window's rows, in PREPROCESS_FILES uploads

    @classmethod
    def pick(cls, quick: bool) -> Sizes:
        if quick:
            return cls(True, 3, 2, 10_000, 2_000, (2_000, 10_000), 1000, 0.05, (20_000, 100_000), 1, ("configured",),
                       20_000)
        return cls(False, 5, 15, 1_000_000, 200_000, (200_000, 1_000_000), 3000, 0.2, (200_000, 1_000_000), 26,
                   ("configured", "never", "always"), 1_000_000)


@dataclass(frozen=True)
class Goal:
    """A bound on a figure's value or on its ratio to the floor (value / floor)."""

    on: str  # "value" or "ratio"
    op: str  # "<", "<=" or ">="
    bound: float

    def met(self, value: float, ratio: float | None) -> bool | None:
        subject = value if self.on == "value" else ratio
        if subject is None:
            return None
        return {"<": subject < self.bound, "<=": subject <= self.bound, ">=": subject >= self.bound}[self.op]

    def text(self, unit: str) -> str:
        if self.on == "ratio":
            return f"{self.op} {self.bound:g}x floor"
        return f"{self.op} {format_value(self.bound, unit)}"


@dataclass
class Figure:
    name: str
    unit: str
    goal: Goal | None  # None: shown for context, no goal of its own
    floor_what: str  # what the floor is, in a few words
    section: str = ""  # the benchmark it comes from (run.py sets it)
    value: float | None = None
    floor: float | None = None
    runs: int = 0
    not_measured: str | None = None
    error: str | None = None  # the benchmark crashed: a bug, and the run fails
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # what stands behind the figure, for the JSON

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return self.value / self.floor

    @property
    def met(self) -> bool | None:
        if self.goal is None or self.value is None:
            return None
        return self.goal.met(self.value, self.ratio)

    def goal_text(self) -> str:
        return self.goal.text(self.unit) if self.goal else "context only"

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "section": self.section,
            "value": self.value,
            "unit": self.unit,
            "floor": self.floor,
            "floor_what": self.floor_what,
            "ratio": self.ratio,
            "goal": self.goal_text(),
            "met": self.met,
            "runs": self.runs,
            "not_measured": self.not_measured,
            "error": self.error,
            "notes": self.notes,
            "data": self.data,
        }


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "rows/s":
        return f"{value / 1e6:.2f}M rows/s" if value >= 1e6 else f"{value / 1e3:.1f}k rows/s"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"
    if unit == "MB" and value < 1:
        return f"{value * 1024:.1f} kB"
    if unit in ("MB", "s"):
        return f"{value:.2f} {unit}" if value < 10 else f"{value:.1f} {unit}"
    return f"{value:g} {unit}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(function: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


@dataclass
class ChildRun:
    seconds: float
    returncode: int
    output: str
    peak_mb: float | None = None  # the child's peak resident set (VmHWM), when sampled

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self.output.strip().splitlines()[-lines:])


def child_result(figure: Figure, what: str, command: Callable[[Path, Path], list[str]],
                 timeout: float) -> dict[str, Any] | None:
    """A benchmark's child run in a temporary folder: command(folder, result file) writes its measurements to the
    result file; they are returned, or None with the figure marked not measured (`what` failed)."""
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as folder:
        result = Path(folder) / "result.json"
        child = run_child(command(Path(folder), result), timeout=timeout)
        if child.returncode != 0 or not result.exists():
            figure.not_measured = f"{what} failed (exit {child.returncode}): {child.tail(3)}"
            return None
        return json.loads(result.read_text())


def run_child(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 600, sample_memory: bool = False) -> ChildRun:
    """Run a fresh process: its wall time and, if asked, its peak memory."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        peak = _PeakSampler(process.pid) if sample_memory else None
        wait_exact(process, timeout)
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read().decode(errors="replace")
    if seconds >= timeout:
        output += f"\ntimed out after {timeout:.0f} s"
    return ChildRun(seconds, process.returncode, output, peak.stop() if peak else None)


def wait_exact(process: subprocess.Popen, timeout: float) -> int:
    """Wait for the process to exit, killing it after `timeout` seconds; its exit code. Not Popen.wait(timeout),
    which polls with sleeps of up to 50 ms and so rounds every timed run up by as much."""
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        return process.wait()
    finally:
        killer.cancel()


class _PeakSampler(threading.Thread):
    """Reads the child's VmHWM (its high-water mark, which only grows) from /proc until it exits.

    Not wait4's ru_maxrss: on Linux that carries the parent's peak over fork and exec, so a child of this
    (pandas-laden) process would never report less than the parent uses.
    """

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.peak_kb = 0
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.wait(0.01):
            try:
                lines = self.status.read_text().splitlines()
            except OSError:  # gone
                return
            for line in lines:
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def stop(self) -> float:
        self.done.set()
        self.join()
        return self.peak_kb / 1024


def load_ml(name: str) -> ModuleType:
    """A job script from ml/, imported as SageMaker's containers do (its folder on sys.path for siblings)."""
    folder = str(ROOT / "ml")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "ml" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def bench_python(create: bool) -> Path | None:
    """.venv-bench's python, made first (once: a marker file says it is complete) when `create`."""
    python = BENCH_VENV / "bin" / "python"
    if (BENCH_VENV / ".installed").exists():
        return python
    if not create:
        return None
    print(f"  making the benchmarks' environment: {BENCH_ENV_COMMAND}", flush=True)
    subprocess.run(BENCH_ENV_COMMAND, shell=True, cwd=ROOT, check=True)  # noqa: S602  # fixed text
    return python


def not_measured(name: str, unit: str, goal: Goal | None, floor_what: str, why: str) -> Figure:
    return Figure(name, unit, goal, floor_what, not_measured=why)


def hot_spots(call: Any, calls: int = 1, top: int = 3) -> str:
    """Where a call's time goes (cProfile, functions' own time): what to speed up to close a gap."""
    profile = cProfile.Profile()
    profile.runcall(lambda: [call() for _ in range(calls)])
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values()) or 1.0
    ranked = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    return ", ".join(f"{Path(file).name}:{line} {name} {entry[2] / total:.0%}" for (file, line, name), entry in ranked)
