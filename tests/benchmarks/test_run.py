"""The benchmark command fails when a benchmark crashes: its figures are reported as not measured, with the
error, and the others still run, but the command exits 1 (a crash is a bug, not a figure)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import run as benchmarks_run  # benchmarks/run.py, as `python benchmarks/run.py` imports its modules

    return benchmarks_run


def test_a_crashing_benchmark_fails_the_run_after_the_others_report(run, monkeypatch, tmp_path, capsys):
    # Given two sections, one of which crashes
    from common import Figure

    def crash(sizes):
        raise ZeroDivisionError("division by zero")

    def good(sizes):
        return [Figure("good figure", "s", None, "nothing", value=1.0, floor=1.0, runs=1)]

    monkeypatch.setattr(run, "SECTIONS", [("crashing", crash), ("good", good)])
    out = tmp_path / "results.json"
    # When the command runs
    code = run.main(["--quick", "--out", str(out)])
    # Then it reports both and exits 1, the crashed section's figure naming the error
    assert code == 1
    figures = {figure["section"]: figure for figure in json.loads(out.read_text())["figures"]}
    assert figures["crashing"]["error"] == "ZeroDivisionError: division by zero"
    assert figures["good"]["error"] is None and figures["good"]["value"] == 1.0
    assert "crashing" in capsys.readouterr().out
    sys.modules.pop("run", None)
