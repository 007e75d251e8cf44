"""Fixtures for the template checks: the decoded template, its IAM view (selfheal.iam), the ASL
files rendered with their DefinitionSubstitutions, and a small evaluator for the JSONPath and
intrinsic functions the ASL uses, so a Task's Parameters can be filled from a sample input.

Helpers reach the tests as fixtures (not imports), so they work under any pytest import mode.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from selfheal.iam import TemplatePolicies, load

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
ACCOUNT = "123456789012"
REGION = "us-east-1"
IMAGES = {
    "XGBoostImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5",
    "SKLearnImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
}
VPC = {"SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b", "SecurityGroupIds": "sg-0123abcd"}
BUCKET = "selfheal-databucket"
RUN_ID = "churn-upload-1a2b3c4d5e6f"
ARTIFACTS = f"s3://{BUCKET}/artifacts/churn/{RUN_ID}"
CODE = f"s3://{BUCKET}/code/0123456789abcdef"

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

_FORMAT = re.compile(r"^States\.Format\('((?:[^'\\]|\\.)*)'((?:\s*,\s*[^,()]+)*)\)$")


def _path(document: Any, path: str) -> Any:
    value = document
    for part in [p for p in path.lstrip("$").split(".") if p]:
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"JSONPath {path} not found")
        value = value[part]
    return value


def _expression(text: str, state: Any, context: Any) -> Any:
    if text.startswith("$$"):
        return _path(context, text[1:])
    if text.startswith("$"):
        return _path(state, text)
    match = _FORMAT.match(text)
    if match is None:
        raise ValueError(f"the test evaluator does not know {text!r}: teach it, or simplify the ASL")
    template, args = match.group(1), [a.strip() for a in match.group(2).split(",") if a.strip()]
    values = [_expression(a, state, context) for a in args]
    if template.count("{}") != len(values):
        raise ValueError(f"{text!r}: {template.count('{}')} placeholders for {len(values)} arguments")
    pieces = template.split("{}")
    return pieces[0] + "".join(str(v) + rest for v, rest in zip(values, pieces[1:], strict=True))


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
    return load(TEMPLATE, account_id=ACCOUNT, region=REGION, parameters=IMAGES)


@pytest.fixture(scope="session")
def vpc_policies() -> TemplatePolicies:
    return load(TEMPLATE, account_id=ACCOUNT, region=REGION, parameters={**IMAGES, **VPC})


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
def fill() -> Callable[..., Any]:
    """fill(parameters, state=STATE_AFTER_TASKS, retry_count=0) -> the request the Task sends."""

    def _fill(parameters: Any, state: Any = None, retry_count: int = 0) -> Any:
        context = {"State": {"RetryCount": retry_count, "Name": "Task"}, "Execution": {"Name": RUN_ID}}
        return fill_parameters(parameters, STATE_AFTER_TASKS if state is None else state, context)

    return _fill
