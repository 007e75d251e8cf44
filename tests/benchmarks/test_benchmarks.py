"""The benchmark command runs end to end and reports every figure; it is not a timed test (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {"cold start", "package size", "ingest reads", "inference", "drift analysis", "monitor end to end",
            "scale: monitor, Preprocess and training on 2 instances", "performance estimation", "the loop", "backtest"}
TIMEOUT_SECONDS = 600


@pytest.mark.e2e
def test_quick_benchmarks_report_every_figure(tmp_path: Path) -> None:
    # Given the benchmark command in its quick mode
    out = tmp_path / "results.json"

    # When it runs
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)

    # Then it exits 0, prints the table and writes it as JSON, with a figure from every benchmark
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["quick"] is True
    assert {"nproc", "cpu"} <= results["machine"].keys()
    figures = results["figures"]
    assert {figure["section"] for figure in figures} == SECTIONS
    assert {f"inference {kind} {rows} row{'s' if rows != '1' else ''}"
            for kind in ("CSV", "JSON") for rows in ("1", "100", "10,000")} <= {f["figure"] for f in figures}
    assert "figure" in run.stdout and "floor" in run.stdout and "goal" in run.stdout
    # And no benchmark crashed; each figure has a value or says why not, a floor (or why not) and a goal
    assert [figure["section"] for figure in figures if figure["error"]] == []
    for figure in figures:
        assert figure["figure"] in run.stdout
        assert figure["value"] is not None or figure["not_measured"], figure
        assert figure["floor"] is not None or figure["not_measured"], figure
        assert figure["floor_what"] or figure["not_measured"], figure
        assert figure["goal"], figure
