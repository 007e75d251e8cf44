"""The --out folder: resolved once, started clean, and never a user's own files deleted."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.cli import main
from selfheal.outdir import MARKER, OutFolderError, prepare_out


def test_a_relative_out_is_resolved_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert prepare_out(Path("out/demo")) == tmp_path / "out" / "demo"
    assert (tmp_path / "out" / "demo" / MARKER).is_file()


def test_a_previous_run_is_cleared_of_what_selfheal_wrote_and_nothing_else(tmp_path):
    # Given a folder a previous run wrote, and a file the user put beside it
    out = prepare_out(tmp_path / "out")
    (out / "cloud" / "jobs" / "old-job").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    (out / "report.html").write_text("<html>")
    (out / "notes.txt").write_text("mine")
    # When a new run starts there
    prepare_out(out)
    # Then the old run's sandboxes, logs and reports are gone, and the user's file is kept
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "notes.txt"]


def test_an_empty_folder_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    assert prepare_out(tmp_path / "empty") == tmp_path / "empty"


def test_a_folder_selfheal_did_not_write_is_refused_untouched(tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cloud").mkdir()  # a name selfheal would clear, in a folder that is not its own
    (mine / "report.json").write_text("my own report")
    with pytest.raises(OutFolderError) as caught:
        prepare_out(mine)
    assert str(caught.value) == (f"--out {mine} is not empty and was not written by selfheal: "
                                 "choose a new or empty folder")
    assert sorted(p.name for p in mine.iterdir()) == ["cloud", "report.json"]


def test_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutFolderError, match="is a file, not a folder"):
        prepare_out(tmp_path / "out")


@pytest.mark.parametrize("command", [["demo"],
                                     ["local", "invoke", "IngestFunction", "-e", "events/ingest/valid_csv.json"]])
def test_the_cli_answers_a_bad_out_with_one_line_and_exit_2(tmp_path, capsys, command, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    (tmp_path / "taken").write_text("a file")
    assert main([*command, "--out", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err == f"selfheal: --out {tmp_path / 'taken'} is a file, not a folder\n"
