"""The model configuration: one validated document, refused whole with every bad field named."""

import contextlib
import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from selfheal_bench.fixtures.aws import BUCKET, CHURN
from selfheal_shared.config import ModelConfig, load_config, read_model_config
from selfheal_shared.errors import ConfigError, ConfigNotFound

MINIMAL_YAML = """
target: churned
problem: binary
metric: {name: auc, threshold: 0.75}
"""


def problems_of(document) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(document)
    return raised.value.problems


def test_the_three_required_fields_are_enough_and_the_rest_has_sane_defaults():
    config = load_config(MINIMAL_YAML)

    assert (config.target, config.problem, config.metric.name, config.metric.threshold) == ("churned", "binary",
                                                                                          "auc", 0.75)
    assert config.metric.min_improvement == 0
    assert config.greater_is_better
    assert config.trigger.mode == "every_upload"
    assert config.training.window.mode == "all"
    assert config.training.spot.enabled is False
    assert config.approval == "auto"
    assert config.validation.min_rows == 50
    assert config.monitor.schedule_expression == "rate(1 hour)"
    assert config.monitor.drift_threshold == 0.1
    assert config.retrain.on_violation == "retrain"
    assert (config.training.instance_count, config.training.processing_instance_count,
            config.monitor.instance_count) == (1, 1, 1)


def test_json_text_and_a_dict_load_the_same_configuration_as_yaml():
    assert load_config(json.dumps(CHURN), fmt="json") == load_config(MINIMAL_YAML) == load_config(dict(CHURN))


def test_a_configuration_round_trips_through_its_json_form():
    config = load_config({**CHURN, "hyperparameters": {"num_round": 200, "eta": 0.1, "objective": "binary:logistic"},
                          "training": {"window": {"mode": "last_n", "last_n": 3}, "spot": {"enabled": True}}})

    assert load_config(config.as_json()) == config


@pytest.mark.parametrize(("metric", "greater_is_better"), [("auc", True), ("accuracy", True), ("f1", True),
                                                           ("logloss", False)])
def test_greater_is_better_follows_the_classification_metric(metric, greater_is_better):
    assert load_config({**CHURN, "metric": {"name": metric, "threshold": 0.5}}).greater_is_better is greater_is_better


@pytest.mark.parametrize(("metric", "greater_is_better"), [("rmse", False), ("mae", False), ("r2", True)])
def test_greater_is_better_follows_the_regression_metric(metric, greater_is_better):
    config = load_config({"target": "price", "problem": "regression", "metric": {"name": metric, "threshold": 0.5}})
    assert config.greater_is_better is greater_is_better


def test_a_wrong_type_names_the_field_path():
    assert problems_of({**CHURN, "metric": {"name": "auc", "threshold": "high"}}) == [
        "metric.threshold: Input should be a valid number"
    ]


def test_every_bad_field_is_named_at_once():
    problems = problems_of({
        "target": "churned", "problem": "binary", "metric": {"name": "auc", "threshold": 0.7},
        "approval": "sometimes", "colour": "blue",
        "training": {"window": {"mode": "last_n"}, "instance_type": "m5.large"},
        "validation": {"min_rows": 0},
    })

    assert [problem.split(":")[0] for problem in problems] == [
        "training.window.last_n", "training.instance_type", "approval", "validation.min_rows", "colour",
    ]


@pytest.mark.parametrize(("problem", "metric"), [("regression", "auc"), ("regression", "logloss"),
                                                 ("regression", "f1"), ("regression", "accuracy"),
                                                 ("binary", "rmse"), ("multiclass", "mae"), ("binary", "r2")])
def test_a_metric_that_does_not_fit_the_problem_is_refused(problem, metric):
    problems = problems_of({"target": "y", "problem": problem, "metric": {"name": metric, "threshold": 0.5}})
    assert problems == [f"metric.name: {metric} does not apply to a {problem} problem "
                        + problems[0].split("problem ", 1)[1]]


@pytest.mark.parametrize(("field", "value", "path"), [
    ("metric", {"name": "auc", "threshold": 1.5}, "metric.threshold"),
    ("metric", {"name": "auc", "threshold": 0.8, "min_improvement": -0.1}, "metric.min_improvement"),
    ("metric", {"name": "auc", "threshold": float("nan")}, "metric.threshold"),
    ("metric", {"name": "auc", "threshold": True}, "metric.threshold"),
    ("split", {"test": 0.9}, "split.test"),
    ("deploy", {"canary_percent": 80}, "deploy.canary_percent"),
    ("deploy", {"autoscaling": {"min_capacity": 4, "max_capacity": 2}}, "deploy.autoscaling.max_capacity"),
    ("monitor", {"schedule_expression": "every hour"}, "monitor.schedule_expression"),
    ("monitor", {"check_types": ["psychic_check"]}, "monitor.check_types.0"),
    ("retrain", {"on_violation": "panic"}, "retrain.on_violation"),
    ("training", {"spot": {"enabled": True, "max_runtime_seconds": 7200, "max_wait_seconds": 3600}},
     "training.spot.max_wait_seconds"),
    ("hyperparameters", {"num_round": "many rounds\n"}, "hyperparameters.num_round"),
    ("hyperparameters", {"Max Depth": 3}, "hyperparameters.Max Depth"),
    ("hyperparameters", {"sagemaker_program": "evil.py"}, "hyperparameters.sagemaker_program"),
    ("hyperparameters", {"target": "other"}, "hyperparameters.target"),
    ("hyperparameters", {"eta": [0.1]}, "hyperparameters.eta"),
    ("trigger", {"mode": "min_new_rows", "min_new_rows": 0}, "trigger.min_new_rows"),
    # SageMaker's InstanceCount bounds (botocore: ProcessingInstanceCount 1 to 100; training at most 100 here)
    ("training", {"instance_count": 0}, "training.instance_count"),
    ("training", {"instance_count": 101}, "training.instance_count"),
    ("training", {"instance_count": 2.5}, "training.instance_count"),
    ("training", {"processing_instance_count": 0}, "training.processing_instance_count"),
    ("training", {"processing_instance_count": 101}, "training.processing_instance_count"),
    ("monitor", {"instance_count": 0}, "monitor.instance_count"),
    ("monitor", {"instance_count": 101}, "monitor.instance_count"),
    ("validation", {"allowed_formats": ["csv", "xlsx"]}, "validation.allowed_formats.1"),
    ("validation", {"allowed_formats": ["csv", "csv"]}, "validation.allowed_formats"),
    ("monitor", {"check_types": ["data_type_check", "data_type_check"]}, "monitor.check_types"),
])
def test_out_of_range_and_unsafe_values_are_refused_by_path(field, value, path):
    problems = problems_of({**CHURN, field: value})
    assert [problem.split(": ")[0] for problem in problems] == [path]


def test_a_blank_target_is_refused():
    assert [p.split(":")[0] for p in problems_of({**CHURN, "target": "   "})] == ["target"]


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty"),
    ("- a\n- b\n", "must be a mapping"),
    ("target: [unclosed", "not valid YAML"),
    ("a: &x [1, 2]\nb: *x\n", "aliases are not allowed"),
    ("!!python/object/apply:os.system ['true']", "not valid YAML"),
    ("x: " + "[" * 40 + "]" * 40, "nested deeper"),
    ("target: " + "y" * 70_000, "larger than"),
])
def test_hostile_or_broken_documents_are_refused_with_a_clear_message(text, fragment):
    assert fragment in " ".join(problems_of(text))


def test_json_text_that_is_not_json_is_refused():
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config("{target: churned}", fmt="json")


def test_read_model_config_reads_yaml_then_json_from_the_bucket(cloud):
    cloud.put_config("churn", CHURN)
    cloud.put_config("fraud", json.dumps({**CHURN, "target": "is_fraud"}), suffix=".json")

    assert read_model_config("churn").target == "churned"
    assert read_model_config("fraud").target == "is_fraud"


def test_a_missing_configuration_raises_config_not_found(cloud):
    with pytest.raises(ConfigNotFound, match=f"config/ghost.yaml in s3://{BUCKET}/"):
        read_model_config("ghost")


def test_a_bad_configuration_in_the_bucket_names_its_key_and_field(cloud):
    cloud.put_config("churn", {**CHURN, "metric": {"name": "auc", "threshold": "x"}})

    with pytest.raises(ConfigError, match=r"config/churn.yaml: metric.threshold: Input should be a valid number"):
        read_model_config("churn")


# Property-based: whatever the document, the outcome is a complete ModelConfig or ConfigError.

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
config_like = st.fixed_dictionaries(
    {},
    optional={
        "target": json_values, "problem": st.sampled_from(["binary", "multiclass", "regression", "other"]),
        "metric": st.fixed_dictionaries({}, optional={"name": st.sampled_from(["auc", "rmse", "x"]),
                                                      "threshold": json_values, "min_improvement": json_values}),
        "trigger": json_values, "training": json_values, "hyperparameters": json_values, "approval": json_values,
        "validation": json_values, "split": json_values, "deploy": json_values, "monitor": json_values,
        "retrain": json_values, "unknown": json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(config_like)
def test_any_document_yields_a_config_or_a_config_error(document):
    try:
        config = load_config(document)
    except ConfigError as error:
        assert error.problems and all(": " in problem for problem in error.problems)
    else:
        assert isinstance(config, ModelConfig)
        assert load_config(config.as_json()) == config


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.builds(yaml.safe_dump, json_values))
def test_any_text_yields_a_config_or_a_config_error(text):
    with contextlib.suppress(ConfigError):
        load_config(text)

