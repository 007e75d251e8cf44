"""`selfheal local run` refuses a scenario it cannot run, naming the place, before anything runs."""

from pathlib import Path

import pytest
import yaml
from selfheal_bench.scenario import ScenarioError, load_scenario

from selfheal.cli import main

CONFIG = {"target": "churned", "problem": "binary", "metric": {"name": "auc", "threshold": 0.75}}


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


@pytest.mark.parametrize("name", ["churn_v2", "team/churn", "my model", "-churn", "x" * 55])
def test_a_model_name_ingest_would_refuse_is_refused_before_anything_runs(tmp_path, data_file, name):
    # Given a model whose name IngestFunction cannot take from incoming/<model>/
    path = write(tmp_path, yaml.safe_dump({"models": {name: {"config": CONFIG}},
                                           "steps": [{"upload": {"model": name, "file": "data/first.csv"}}]}))
    # Then the scenario is refused with the product's own rule
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert f"models.{name}: model name {name!r} is not allowed: use 1-54 letters, digits and inner hyphens" \
        in str(caught.value)


@pytest.mark.parametrize(("fault", "message"), [
    ({"target": "job:training", "kind": "meltdown"}, "faults[1]: unknown kind 'meltdown' for job:training (known: "),
    ({"target": "job:training", "kind": "capacity", "times": "lots"},
     "faults[1]: times must be a whole number of at least 1, or null for every time (got 'lots')"),
    ({"target": "job:training", "kind": "capacity", "times": 0}, "times must be a whole number of at least 1"),
    ({"target": "job:training", "kind": "capacity", "times": True}, "times must be a whole number of at least 1"),
    ({"target": "reactor:core", "kind": "meltdown"}, "faults[1]: unknown fault target 'reactor:core' (known: "),
    ({"target": "job:training", "kind": "capacity", "when": "now"}, "faults[1]: a fault is a mapping of target, kind"),
    ({"target": "job:training"}, "faults[1]: a fault is a mapping of target, kind"),
])
def test_a_fault_the_local_cloud_cannot_inject_is_refused_before_anything_runs(tmp_path, data_file, fault, message):
    path = write(tmp_path, yaml.safe_dump({"models": {"churn": {"config": CONFIG}}, "faults": [fault],
                                           "steps": [{"monitor": {"model": "churn"}}]}))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert message in str(caught.value)


def test_faults_from_the_catalogue_are_kept_with_their_count(tmp_path, data_file):
    faults = [{"target": "job:training", "kind": "capacity"}, {"target": "lambda:IngestFunction", "kind": "throttle",
                                                                "times": None}]
    path = write(tmp_path, yaml.safe_dump({"models": {"churn": {"config": CONFIG}}, "faults": faults,
                                           "steps": [{"monitor": {"model": "churn"}}]}))
    assert load_scenario(path).faults == [{"target": "job:training", "kind": "capacity", "times": 1},
                                          {"target": "lambda:IngestFunction", "kind": "throttle", "times": None}]


def test_a_scenario_that_is_not_utf8_is_refused_with_a_line_not_a_traceback(tmp_path, capsys):
    path = tmp_path / "scenario.yaml"
    path.write_bytes("models: {churn: {config: {target: 'résultat'}}}\n".encode("latin-1"))
    assert main(["local", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"selfheal: invalid scenario: {path}: not UTF-8 text (scenario): invalid byte at offset ")
    assert "Traceback" not in err and len(err.splitlines()) == 1
