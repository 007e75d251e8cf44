"""selfheal's benchmarks: each figure beside its floor measured in the same run, medians of repeated runs.

    .venv/bin/python benchmarks/run.py [--quick] [--only NAME[,NAME]] [--out benchmarks/results.json]

--only re-measures the named sections alone (cold_start, package_size, ingest_reads, inference, drift, monitor, scale,
estimation, loop, backtest), written by default to benchmarks/results-<names>.json so a full run's results.json
stays whole.

Prints one table (figure, value, floor, ratio, goal, met?, runs) and writes it as JSON. These measure and
print; they assert nothing. A benchmark that cannot run (no SAM CLI, a failing demo) reports its figure as
not measured, with why, and the others go on; one that crashes is reported with its error, the others go
on, and the run exits 1. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import backtest_replay
import cold_start
import demo_loop
import drift
import estimation
import inference_speed
import ingest_reads
import package_size
import scale
from common import ROOT, Figure, Sizes, format_value

Section = tuple[str, Callable[[Sizes], list[Figure]]]

SECTIONS: list[Section] = [
    ("cold start", cold_start.measure),
    ("package size", lambda sizes: package_size.measure()),
    ("ingest reads", ingest_reads.measure),
    ("inference", inference_speed.measure),
    ("drift analysis", drift.in_memory),
    ("monitor end to end", drift.end_to_end),
    ("scale: monitor, Preprocess and training on 2 instances", scale.measure),
    ("performance estimation", estimation.measure),
    ("the loop", demo_loop.measure),
    ("backtest", backtest_replay.measure),
]
# --only's names for the sections, in SECTIONS' order.
NAMES = dict(zip(["cold_start", "package_size", "ingest_reads", "inference", "drift", "monitor", "scale", "estimation",
                  "loop", "backtest"],
                 (title for title, _ in SECTIONS), strict=True))


def selected(only: str | None) -> list[str]:
    """The names of the sections --only asks for, in SECTIONS' order (all without it); an unknown name is refused
    with the known ones."""
    if only is None:
        return list(NAMES)
    names = {name.strip() for name in only.split(",") if name.strip()}
    unknown = sorted(names - set(NAMES))
    if unknown or not names:
        raise ValueError(f"--only: unknown section {', '.join(unknown) or '(none given)'}; known: {', '.join(NAMES)}")
    return [name for name in NAMES if name in names]


def run_section(title: str, measure: Callable[[Sizes], list[Figure]], sizes: Sizes) -> list[Figure]:
    """A section's figures; if it breaks, one figure saying so, and the run goes on."""
    print(f"[{datetime.now():%H:%M:%S}] {title} ...", flush=True)
    started = time.perf_counter()
    try:
        figures = measure(sizes)
    except Exception as error:  # reported in the table: one broken benchmark must not hide the others
        traceback.print_exc()
        why = f"{type(error).__name__}: {error}"
        figures = [Figure(title, "", None, "", not_measured=why, error=why)]
    print(f"[{datetime.now():%H:%M:%S}] {title}: {time.perf_counter() - started:.0f} s", flush=True)
    for figure in figures:
        figure.section = title
    return figures


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,  # noqa: S607
                            text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gb": round(int(memory) / 1024 / 1024, 1),
            "python": platform.python_version(), "platform": platform.platform(), "commit": commit or None,
            "load_average_start": os.getloadavg()}


def table(figures: list[Figure]) -> str:
    rows = [("figure", "value", "floor", "ratio", "goal", "met?", "runs")]
    for figure in figures:
        value = format_value(figure.value, figure.unit) if figure.value is not None else "not measured"
        floor = format_value(figure.floor, figure.unit) if figure.floor is not None else "-"
        ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "-"
        met = {True: "yes", False: "NO", None: "n/a"}[figure.met]
        rows.append((figure.name, value, floor, ratio, figure.goal_text(), met, str(figure.runs or "-")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def floors(figures: list[Figure]) -> str:
    """Each section's floors, once."""
    found: dict[str, list[str]] = {}
    for figure in figures:
        if figure.floor_what and figure.floor_what not in found.setdefault(figure.section, []):
            found[figure.section].append(figure.floor_what)
    return "\n".join(f"- {section}: {'; '.join(what)}" for section, what in found.items() if what)


def notes(figures: list[Figure]) -> str:
    lines = []
    for figure in figures:
        if figure.not_measured:
            lines.append(f"- {figure.name}: not measured: {figure.not_measured}")
        lines += [f"- {figure.name}: {note}" for note in figure.notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="selfheal's benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats: checks that it all runs")
    parser.add_argument("--only", metavar="NAME[,NAME]", help=f"only these sections: {', '.join(NAMES)}")
    parser.add_argument("--out", type=Path, help="default benchmarks/results.json (results-<names>.json with --only)")
    args = parser.parse_args(argv)
    try:
        names = selected(args.only)
    except ValueError as refused:
        parser.error(str(refused))  # exits 2: bad input, refused before anything ran
    sections = SECTIONS if args.only is None else [s for s in SECTIONS if s[0] in {NAMES[name] for name in names}]
    out = args.out or ROOT / "benchmarks" / ("results.json" if args.only is None else f"results-{'-'.join(names)}.json")
    sizes = Sizes.pick(args.quick)
    about = machine()
    started = time.perf_counter()
    figures = [figure for title, measure in sections for figure in run_section(title, measure, sizes)]
    about["load_average_end"] = os.getloadavg()
    print(f"\nselfheal benchmarks{' (quick)' if args.quick else ''}: {about['nproc']} x {about['cpu']}, "
          f"{about['memory_gb']} GB, Python {about['python']}, commit {about['commit']}; load average "
          f"{about['load_average_start'][0]:.2f} at the start, {about['load_average_end'][0]:.2f} at the end "
          f"(the machine is shared: figures are medians of the runs shown)\n")
    print(table(figures))
    print("\nfloors (measured in this run)\n" + floors(figures))
    print("\nnotes\n" + notes(figures))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "quick": args.quick, "only": names if args.only else None,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 1), "machine": about,
        "figures": [figure.to_json() for figure in figures]}, indent=2) + "\n")
    print(f"\nwritten to {out}")
    crashed = [figure.section for figure in figures if figure.error]
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
