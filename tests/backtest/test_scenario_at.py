"""A step's `at`: when it happens in the backtest's simulated time, refused before anything runs when wrong."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selfheal_bench.scenario import HISTORY_START, load_scenario

from selfheal.cli import main


def scenario(tmp_path: Path, *ats: str | None) -> Path:
    (tmp_path / "first.csv").write_text("a,churned\n1,0\n")
    steps = "".join(f"  - upload: {{model: churn, file: first.csv{'' if at is None else f', at: {at}'}}}\n"
                    for at in ats)
    path = tmp_path / "scenario.yaml"
    config = "{target: churned, problem: binary, metric: {name: auc, threshold: 0.75}}"
    path.write_text(f"models:\n  churn: {{config: {config}}}\nsteps:\n{steps}")
    return path


def test_offsets_count_from_the_first_steps_time(tmp_path):
    # Given a first step at an ISO time and later steps at offsets, one without any
    path = scenario(tmp_path, "'2026-03-02T09:00:00Z'", "7d", "2w 3h", None, "3w 90m 30s")
    # When it is loaded
    steps = load_scenario(path).steps
    # Then each offset is from the first step, and a step without `at` happens with the one before it
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    later = start + timedelta(weeks=2, hours=3)
    assert [s.at for s in steps] == [start, start + timedelta(days=7), later, later,
                                     start + timedelta(weeks=3, minutes=90, seconds=30)]


def test_without_any_at_every_step_happens_at_the_history_start(tmp_path):
    # Given the existing format, no `at` anywhere: it loads as before
    steps = load_scenario(scenario(tmp_path, None, None)).steps
    assert [s.at for s in steps] == [HISTORY_START, HISTORY_START]


def test_an_iso_time_without_a_zone_is_utc_and_yaml_dates_are_read(tmp_path):
    steps = load_scenario(scenario(tmp_path, "2026-03-02", "2026-03-03T10:00:00", "'2026-03-04T12:00:00+02:00'")).steps
    assert [s.at for s in steps] == [datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, 10, tzinfo=UTC),
                                     datetime(2026, 3, 4, 10, tzinfo=UTC)]


@pytest.mark.parametrize(("ats", "message"), [
    (("0d", "next week"), "steps[2].at: 'next week' is neither an ISO-8601 time"),
    (("0d", "7x"), "steps[2].at: '7x' is neither an ISO-8601 time"),
    (("0d", "2w", "1w"), "steps[3].at: 2026-01-12T00:00:00+00:00 is before the step before it "
                         "(2026-01-19T00:00:00+00:00)"),
])
def test_a_bad_at_is_refused_naming_the_step_and_field_with_exit_code_2(tmp_path, capsys, ats, message):
    # Given a scenario whose `at` cannot be read, or goes back in time
    path = scenario(tmp_path, *ats)
    # When the backtest is asked to run it
    code = main(["backtest", str(path), "--out", str(tmp_path / "out")])
    # Then it is refused before anything runs, naming the step and the field
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
