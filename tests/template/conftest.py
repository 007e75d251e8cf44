"""Fixtures for the template checks: the decoded template, its IAM view (selfheal_bench.iam), the ASL
files rendered with their DefinitionSubstitutions, and a small evaluator for the JSONPath and
intrinsic functions the ASL uses, so a Task's Parameters can be filled from a sample input.

Helpers reach the tests as fixtures (not imports), so they work under any pytest import mode.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selfheal_bench import iam_grants
from selfheal_bench.iam import TemplatePolicies
from selfheal_shared.instances import job_resources

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET = "selfheal-databucket"
RUN_ID = "churn-upload-1a2b3c4d5e6f"
ARTIFACTS = f"s3://{BUCKET}/artifacts/churn/{RUN_ID}"
CODE = f"s3://{BUCKET}/code/0123456789abcdef"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-4000-8000-000000000001"

# The execution input of docs/architecture.md ("TrainingPipeline execution input"), with the job
# prefix at its 40-character maximum so name lengths are checked at their worst.
PIPELINE_INPUT: dict[str, Any] = {
    "run_id": RUN_ID,
    "model": "churn",
    "trigger": "upload",
    "bucket": BUCKET,
    "code_uri": CODE,
    "artifacts_uri": ARTIFACTS,
    "job_prefix": "churn-with-a-long-model-name-1a2b3c4d5e6f"[:40],
    "config": {
        "target": "churned",
        "problem": "binary",
        "metric": {"name": "auc", "threshold": 0.75, "min_improvement": 0.0},
        "approval": "auto",
    },
    "training": {
        "hyperparameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"/opt/ml/input/data/code/sourcedir.tar.gz"',
            "target": '"churned"',
            "problem": '"binary"',
            "num_round": "200",
        },
        "spot": True,
        "stopping_condition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        "instance_type": "ml.m5.xlarge",
        "processing_instance_type": "ml.m5.large",
        "resource_config": job_resources("ml.m5.xlarge", KEY_ARN),
        "processing_cluster": job_resources("ml.m5.large", KEY_ARN),
        "evaluation_cluster": job_resources("ml.m5.large", KEY_ARN),
    },
    "champion": None,
}

# What the .sync tasks put at their ResultPath (the Describe* output, abridged) and the Lambda
# results after ResultSelector, so later states find what they read.
STATE_AFTER_TASKS: dict[str, Any] = {
    **PIPELINE_INPUT,
    "preprocess": {"ProcessingJobName": "churn-1a2b3c4d5e6f-prep-0", "ProcessingJobStatus": "Completed"},
    "train": {
        "TrainingJobName": "churn-1a2b3c4d5e6f-train-0",
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": f"{ARTIFACTS}/model/churn-1a2b3c4d5e6f-train-0/output/model.tar.gz"},
    },
    "evaluate": {"ProcessingJobName": "churn-1a2b3c4d5e6f-eval-0", "ProcessingJobStatus": "Completed"},
    "gate": {"passed": True, "reasons": ["auc 0.91 >= 0.75"], "metrics": {"auc": 0.91}, "champion_metrics": None},
    "register": {
        "model_package_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model-package/selfheal-churn/1",
        "model_package_group": "selfheal-churn",
        "approval_status": "Approved",
    },
    "error": {"Error": "States.TaskFailed", "Cause": "{}"},
}

# A sample execution of each state machine: its input with what its tasks put at their ResultPaths.
DEPLOY_EXECUTION = "deploy-" + "5" * 64
PACKAGE_ARN = STATE_AFTER_TASKS["register"]["model_package_arn"]
DEPLOY_NAME = "selfheal-churn-with-a-long-model-na-1a2b3c4d5e6f"
STATE_IN_DEPLOY: dict[str, Any] = {
    "model": "churn",
    "model_package_arn": PACKAGE_ARN,
    "run_id": RUN_ID,
    "deploy": {
        "endpoint_name": "selfheal-" + "c" * 54,
        "endpoint_exists": True,
        "previous_config": "selfheal-churn-0a1b2c3d4e5f",
        "model_name": DEPLOY_NAME,
        "endpoint_config_name": DEPLOY_NAME,
        "instance_type": "ml.m5.large",
        "instance_count": 2,
        "capture_percent": 100,
        "capture_uri": f"s3://{BUCKET}/capture/churn",
        "routing": {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                    "WaitIntervalInSeconds": 300},
        "baking_seconds": 300,
        "max_deploy_seconds": 3600,
        "alarms": [{"AlarmName": "selfheal-churn-5xx-errors"}, {"AlarmName": "selfheal-churn-model-latency"}],
        "test_uri": f"{ARTIFACTS}/preprocess/test/test.csv",
        "baseline_uri": f"{ARTIFACTS}/preprocess/baseline",
        "target": "churned",
        "problem": "binary",
        "poll_seconds": 30,
        "max_polls": 140,
    },
    "polls": {"count": 3},
    "endpoint": {"EndpointStatus": "InService", "EndpointConfigName": DEPLOY_NAME},
    "restored": {"EndpointStatus": "InService", "EndpointConfigName": "selfheal-churn-0a1b2c3d4e5f"},
    "failure": {"Error": "SmokeTestFailed", "Cause": "{}"},
    "error": {"Error": "States.TaskFailed", "Cause": "{}"},
}
MONITOR_EXECUTION = "monitor-churn-0123456789ab"
STATE_IN_MONITOR: dict[str, Any] = {
    "model": "churn",
    "window": {
        "has_data": True,
        "reason": "2 capture file(s) to analyse",
        "endpoint_name": "selfheal-churn",
        "start": "2026-01-01T00:00:00.000000Z",
        "end": "2026-01-01T01:00:00.000000Z",
        "files": 2,
        "baseline_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/baseline",
        "manifest_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/input/capture.manifest",
        "report_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/report",
        "code_uri": CODE,
        "job_prefix": "churn-with-a-long-model-name-1a2b3c4d5e6f"[:40],
        "instance_type": "ml.m5.large",
        "cluster": job_resources("ml.m5.large", KEY_ARN),
        "quality_cluster": job_resources("ml.m5.large", KEY_ARN),
        "quality": {
            "has_data": True,
            "reason": "2 capture file(s) and 1 ground-truth file(s) to judge",
            "start": "2025-12-31T00:00:00.000000Z",
            "end": "2026-01-01T01:00:00.000000Z",
            "label_delay_hours": 24.0,
            "metric": "auc",
            "threshold": 0.75,
            "files": 2,
            "label_files": 1,
            "model_package_arn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/selfheal-churn/1",
            "baseline_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/quality-baseline",
            "capture_manifest_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/input/quality-capture.manifest",
            "labels_manifest_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/input/ground-truth.manifest",
            "report_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/quality",
            "labelled_uri": f"s3://{BUCKET}/monitoring/churn/{MONITOR_EXECUTION}/labelled",
        },
    },
    "analysis": [{"ProcessingJobName": "churn-1a2b3c4d5e6f-mon-0", "ProcessingJobStatus": "Completed"},
                 {"ProcessingJobName": "churn-1a2b3c4d5e6f-mq-0", "ProcessingJobStatus": "Completed"}],
    "error": {"Error": "States.TaskFailed", "Cause": "{}"},
}
# Each state machine with its sample state and execution name, for the tests that fill its tasks.
SAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    "TrainingPipeline": (STATE_AFTER_TASKS, RUN_ID),
    "DeployPipeline": (STATE_IN_DEPLOY, DEPLOY_EXECUTION),
    "MonitorPipeline": (STATE_IN_MONITOR, MONITOR_EXECUTION),
}

_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<call>States\.\w+)\(|"
                    r"(?P<path>\$\$?[\w.\[\]]*)|(?P<close>\))|(?P<comma>,))")


def _path(document: Any, path: str) -> Any:
    value = document
    for part in [p for p in path.lstrip("$").split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"JSONPath {path} not found")
        value = value[part]
    return value


def _format(template: str, *values: Any) -> str:
    if template.count("{}") != len(values):
        raise ValueError(f"{template!r}: {template.count('{}')} placeholders for {len(values)} arguments")
    pieces = template.split("{}")
    return pieces[0] + "".join(str(v) + rest for v, rest in zip(values, pieces[1:], strict=True))


def _hash(data: str, algorithm: str) -> str:
    return hashlib.new(algorithm.replace("-", "").lower(), data.encode("utf-8")).hexdigest()


# The intrinsic functions the ASL uses, as AWS documents them.
_FUNCTIONS = {
    "States.Format": _format,
    "States.Hash": _hash,
    "States.Array": lambda *values: list(values),
    "States.MathAdd": lambda a, b: a + b,
}


def _expression(text: str, state: Any, context: Any) -> Any:
    """A JSONPath ($ or $$) or an intrinsic function call, nested calls included."""
    tokens, position = [], 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"the test evaluator cannot read {text!r} from {text[position:]!r}")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    value, rest = _evaluate(tokens, state, context, text)
    if rest:
        raise ValueError(f"unexpected text after the expression in {text!r}")
    return value


def _evaluate(tokens: list[tuple[str | None, str]], state: Any, context: Any, text: str) -> tuple[Any, list]:
    if not tokens:
        raise ValueError(f"the test evaluator cannot read {text!r}")
    (kind, value), rest = tokens[0], tokens[1:]
    if kind == "path":
        return (_path(context, value[1:]) if value.startswith("$$") else _path(state, value)), rest
    if kind == "string":
        return value[1:-1].replace("\\'", "'"), rest
    if kind == "number":
        return (float(value) if "." in value else int(value)), rest
    if kind == "call":
        if value not in _FUNCTIONS:
            raise ValueError(f"the test evaluator does not know {value}: teach it, or simplify the ASL")
        arguments = []
        while rest and rest[0][0] != "close":
            argument, rest = _evaluate(rest, state, context, text)
            arguments.append(argument)
            if rest and rest[0][0] == "comma":
                rest = rest[1:]
        if not rest:
            raise ValueError(f"unclosed call in {text!r}")
        return _FUNCTIONS[value](*arguments), rest[1:]
    raise ValueError(f"the test evaluator cannot read {text!r}")


def fill_parameters(template: Any, state: Any, context: Any) -> Any:
    """Evaluate a Parameters/Payload template as Step Functions would (the subset the ASL uses)."""
    if isinstance(template, dict):
        filled = {}
        for key, value in template.items():
            if key.endswith(".$"):
                filled[key[:-2]] = _expression(value, state, context)
            else:
                filled[key] = fill_parameters(value, state, context)
        return filled
    if isinstance(template, list):
        return [fill_parameters(v, state, context) for v in template]
    return template


@pytest.fixture(scope="session")
def policies() -> TemplatePolicies:
    return iam_grants.view("no-vpc")


@pytest.fixture(scope="session")
def vpc_policies() -> TemplatePolicies:
    return iam_grants.view("vpc")


@pytest.fixture(scope="session")
def raw_template() -> dict[str, Any]:
    """template.yaml as written (before the SAM transform), CloudFormation tags decoded."""
    from cfnlint.decode import decode

    template, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return json.loads(json.dumps(template))


@pytest.fixture(scope="session")
def state_machines(raw_template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Logical id → properties of every AWS::Serverless::StateMachine."""
    return {
        name: resource["Properties"]
        for name, resource in raw_template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    }


@pytest.fixture(scope="session")
def render(state_machines: dict[str, dict[str, Any]]) -> Callable[[TemplatePolicies, str], dict[str, Any]]:
    """render(policies, logical_id) -> the state machine's ASL with its substitutions applied
    textually, as CloudFormation does, and parsed."""

    def _render(view: TemplatePolicies, logical_id: str) -> dict[str, Any]:
        properties = state_machines[logical_id]
        text = (ROOT / properties["DefinitionUri"]).read_text()
        for key, value in view.resolve(properties.get("DefinitionSubstitutions", {})).items():
            text = text.replace("${" + key + "}", str(value))
        return json.loads(text)

    return _render


@pytest.fixture(scope="session")
def samples() -> dict[str, tuple[dict[str, Any], str]]:
    """Each state machine's sample state and execution name (SAMPLES)."""
    return SAMPLES


@pytest.fixture(scope="session")
def fill() -> Callable[..., Any]:
    """fill(parameters, state=STATE_AFTER_TASKS, retry_count=0, machine="TrainingPipeline") -> the request the Task
    sends; `machine` picks that state machine's sample state and execution name (SAMPLES)."""

    def _fill(parameters: Any, state: Any = None, retry_count: int = 0, machine: str = "TrainingPipeline") -> Any:
        sample, execution = SAMPLES[machine]
        context = {"State": {"RetryCount": retry_count, "Name": "Task"}, "Execution": {"Name": execution}}
        return fill_parameters(parameters, sample if state is None else state, context)

    return _fill
