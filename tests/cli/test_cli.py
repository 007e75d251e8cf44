"""The command line's answers to bad input: one line saying what to do, exit 2, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest
from selfheal_bench.localcloud import LocalCloud

from selfheal.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_cloud(monkeypatch):
    """Fail the test if anything starts the local cloud."""
    monkeypatch.setattr(LocalCloud, "start", lambda self: pytest.fail("the local cloud was started"))


@pytest.mark.parametrize("rows", ["50", "0", "-5", "999"])
def test_the_demo_refuses_too_few_rows_naming_the_smallest_size(tmp_path, capsys, no_cloud, rows):
    assert main(["demo", "--rows", rows, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"selfheal demo: --rows {rows} is too few: the demo's model trains once 1000 new rows have "
                   "arrived (its trigger.min_new_rows), so --rows must be at least 1000\n")
    assert not (tmp_path / "out").exists()


def test_an_unknown_function_is_named_with_the_known_ones_before_the_cloud_starts(tmp_path, capsys, no_cloud):
    event = ROOT / "events" / "ingest" / "valid_csv.json"
    assert main(["local", "invoke", "NopeFunction", "-e", str(event), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("selfheal: no function NopeFunction in template.yaml (known: ApprovalFunction, ")
    assert "IngestFunction" in err and not (tmp_path / "out").exists()


def test_an_unreadable_event_is_bad_input(tmp_path, capsys, no_cloud):
    (tmp_path / "event.json").write_text("{not json")
    assert main(["local", "invoke", "IngestFunction", "-e", str(tmp_path / "event.json"),
                 "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"selfheal: cannot read event {tmp_path / 'event.json'}: ")


def test_deploy_help_shows_its_options(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["deploy", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--env ENV" in out and "--dry-run" in out


def test_the_top_level_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "0 when everything ran as asked, 1 when a run failed, an upload was quarantined or traffic errored" in out
    assert "2 for bad input refused before anything ran, 130 when interrupted" in out
