"""`selfheal local run` refuses a scenario it cannot run, naming the place, before anything runs."""

from pathlib import Path

import pytest

from selfheal.cli import main
from selfheal.scenario import ScenarioError, load_scenario


def write(tmp_path: Path, text: str, name: str = "scenario.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "first.csv"
    path.parent.mkdir()
    path.write_text("a,churned\n1,0\n")
    return path


def test_a_valid_scenario_resolves_paths_relative_to_its_file(tmp_path, data_file):
    # Given a scenario with an inline config and an upload step
    path = write(tmp_path, """
models:
  churn: {config: {target: churned, problem: binary, metric: {name: auc, threshold: 0.75}}}
steps:
  - upload: {model: churn, file: data/first.csv}
""")
    # When it is loaded
    scenario = load_scenario(path)
    # Then the step's file is the one beside the scenario
    assert scenario.steps[0].file == data_file.resolve()
    assert scenario.models["churn"]["target"] == "churned"


def test_a_config_given_as_a_path_is_read_from_that_file(tmp_path, data_file):
    (tmp_path / "churn.json").write_text('{"target": "churned", "problem": "binary", '
                                          '"metric": {"name": "auc", "threshold": 0.7}}')
    path = write(tmp_path, "models: {churn: {config: churn.json}}\n"
                           "steps: [{upload: {model: churn, file: data/first.csv}}]\n")
    assert load_scenario(path).models["churn"]["metric"]["threshold"] == 0.7


@pytest.mark.parametrize(("text", "message"), [
    ("steps: [{upload: {model: m, file: x.csv}}]", "'models' must map"),
    ("models: {m: {config: {target: t}}}\nsteps: []", "'steps' must be a non-empty list"),
    ("models: {m: {config: {target: t}}}\nsteps: [{dance: {model: m}}]", "unknown step kind 'dance'"),
    ("models: {m: {config: {target: t}}}\nsteps: [{upload: {model: other, file: data/first.csv}}]",
     "model 'other' is not in 'models'"),
    ("models: {m: {config: {target: t}}}\nsteps: [{upload: {model: m, file: missing.csv}}]", "no such file"),
    ("models: {m: {config: {target: t}}}\nsteps: [{upload: {model: m}}]", "missing ['file']"),
    ("models: {m: {config: {target: t}}}\nsteps: [{monitor: {model: m, when: now}}]", "unknown ['when']"),
    ("models: {m: {config: missing.yaml}}\nsteps: [{monitor: {model: m}}]", "models.m.config: no such file"),
    ("models: {m: {}}\nsteps: [{monitor: {model: m}}]", "models.m: needs 'config'"),
    ("models: [\n", "not valid YAML"),
    ("models: {m: {config: {target: t}}}\nsteps: [{monitor: {model: m}}]\nextra: 1",
     "unknown top-level field(s): extra"),
])
def test_an_invalid_scenario_is_refused_with_a_message_naming_the_problem(tmp_path, data_file, text, message):
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, text))
    assert message in str(caught.value)


def test_the_cli_exits_non_zero_with_the_message_on_an_invalid_scenario(tmp_path, capsys):
    path = write(tmp_path, "models: {m: {config: {target: t}}}\nsteps: [{dance: {model: m}}]\n")
    assert main(["local", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "unknown step kind 'dance'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_cli_names_a_missing_scenario_file(tmp_path, capsys):
    assert main(["local", "run", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert "no such scenario file" in capsys.readouterr().err
