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


def test_only_re_measures_the_named_sections_into_a_file_of_their_own(run, monkeypatch, tmp_path):
    # Given three sections, each recording that it ran
    from common import Figure

    ran = []

    def section(name):
        def measure(sizes):
            ran.append(name)
            return [Figure(f"{name} figure", "s", None, "nothing", value=1.0, floor=1.0, runs=1)]
        return measure

    monkeypatch.setattr(run, "SECTIONS", [("cold start", section("cold start")), ("inference", section("inference")),
                                          ("the loop", section("the loop"))])
    monkeypatch.setattr(run, "NAMES", {"cold_start": "cold start", "inference": "inference", "loop": "the loop"})
    monkeypatch.setattr(run, "ROOT", tmp_path)
    # When the command runs with --only naming two of them (in any order)
    code = run.main(["--quick", "--only", "loop,cold_start"])
    # Then only those ran, in the usual order, written beside results.json in a file named after them
    assert code == 0 and ran == ["cold start", "the loop"]
    document = json.loads((tmp_path / "benchmarks" / "results-cold_start-loop.json").read_text())
    assert document["only"] == ["cold_start", "loop"]
    assert [figure["figure"] for figure in document["figures"]] == ["cold start figure", "the loop figure"]
    assert not (tmp_path / "benchmarks" / "results.json").exists()
    sys.modules.pop("run", None)


def test_only_refuses_an_unknown_section_naming_the_known_ones(run, capsys):
    with pytest.raises(SystemExit) as refused:
        run.main(["--quick", "--only", "inference,warp_speed"])
    assert refused.value.code == 2
    assert capsys.readouterr().err.endswith("--only: unknown section warp_speed; known: cold_start, package_size, "
                                            "ingest_reads, "
                                            "inference, drift, monitor, scale, estimation, loop, backtest\n")
    sys.modules.pop("run", None)


def test_a_timed_child_is_waited_for_without_sleeping_polls_and_killed_at_its_timeout(run, monkeypatch):
    # Given the wait benchmarks time children with, where sleeping is forbidden (Popen.wait(timeout) polls with
    # sleeps of up to 50 ms, which rounded every cold start up by as much)
    import time

    from common import run_child

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s while waiting")

    monkeypatch.setattr(time, "sleep", no_sleep)
    # When a quick child runs, and a child that outlives its timeout
    quick = run_child([sys.executable, "-c", "print('done')"])
    started = time.perf_counter()
    slow = run_child([sys.executable, "-c", "import time; time.sleep(60)"], timeout=0.5)
    # Then the first is timed to its exit, and the second killed at its timeout, not 60 s later
    assert (quick.returncode, quick.output.strip()) == (0, "done")
    assert slow.returncode == -9 and "timed out after" in slow.output
    assert time.perf_counter() - started < 30
