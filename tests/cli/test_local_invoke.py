"""`selfheal local invoke`, the Docker-free `sam local invoke`, on every sample event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfheal.cli import main

ROOT = Path(__file__).resolve().parents[2]
EVENTS = sorted(ROOT.glob("events/*/*.json"))


def logical_id(folder: str) -> str:
    """events/<folder>/ ↔ <Folder>Function in template.yaml, as the tree's names line up."""
    return "".join(part.capitalize() for part in folder.split("_")) + "Function"


@pytest.mark.parametrize("event", EVENTS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_every_sample_event_runs_through_its_function_on_the_local_cloud(event: Path, tmp_path: Path, capsys):
    # When the function is invoked with the sample event, as `sam local invoke -e` would
    code = main(["local", "invoke", logical_id(event.parent.name), "-e", str(event), "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    # Then it answers like Lambda: the handler's JSON result (exit 0), or its error by name (exit 1)
    answer = json.loads(printed)
    if code == 0:
        assert isinstance(answer, dict)
    else:
        assert code == 1 and answer["errorType"] and answer["errorMessage"]
    # And the function's own log was written where the local cloud keeps logs
    assert (tmp_path / "cloud" / "logs" / f"{logical_id(event.parent.name)}.log").is_file()


def test_an_unknown_function_is_named_with_the_known_ones(tmp_path: Path, capsys):
    event = EVENTS[0]
    assert main(["local", "invoke", "NoSuchFunction", "-e", str(event), "--out", str(tmp_path)]) == 2
    assert "IngestFunction" in capsys.readouterr().err


def test_graph_writes_a_picture_and_mermaid_for_every_state_machine(tmp_path: Path, capsys):
    assert main(["graph", "--out", str(tmp_path)]) == 0
    names = {path.stem for path in (ROOT / "statemachines").glob("*.asl.json")}
    assert {p.name for p in tmp_path.iterdir()} == {f"{n.removesuffix('.asl')}.{ext}" for n in names
                                                    for ext in ("svg", "mmd")}
