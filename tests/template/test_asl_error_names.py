"""Every Retry and Catch in the state machines names errors their tasks can really fail with, and a
SageMaker call that created nothing because it was refused for good is never retried.

Sources: "Handling errors in Step Functions workflows" (error names; States.TaskFailed matches any error
but States.Timeout), "Create and manage Amazon SageMaker AI jobs with Step Functions", "Learning to use AWS
service SDK integrations in Step Functions" and "Handle transient Lambda service exceptions"."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from asl_rules import (
    SAGEMAKER_TRANSIENT_ERRORS,
    STATES_ERRORS,
    all_states,
    first_retrier,
    produced_errors,
)
from selfheal_bench.localcloud.sfn_integrations import sagemaker_error_names

ROOT = Path(__file__).resolve().parents[2]
MACHINES = ("TrainingPipeline", "DeployPipeline", "MonitorPipeline")


def own_errors() -> set[str]:
    """The errors a handler raises by name for the state machines: selfheal_shared/errors.py holds them all,
    so the contract between functions and ASL is one file."""
    errors = ROOT / "layers" / "shared" / "selfheal_shared" / "errors.py"
    return {node.name for node in ast.walk(ast.parse(errors.read_text())) if isinstance(node, ast.ClassDef)}


def tasks(render, policies) -> list[tuple[str, str, dict[str, Any]]]:
    return [(machine, name, state) for machine in MACHINES
            for name, state in all_states(render(policies, machine)) if state["Type"] == "Task"]


def test_every_retry_and_catch_names_an_error_its_task_can_fail_with(render, policies):
    raised_by_functions = own_errors()
    for machine, name, state in tasks(render, policies):
        possible = STATES_ERRORS | produced_errors(state["Resource"])
        if state["Resource"].startswith("arn:aws:states:::lambda:invoke"):
            possible |= raised_by_functions
        for handler in [*state.get("Retry", []), *state.get("Catch", [])]:
            assert set(handler["ErrorEquals"]) <= possible, (
                f"{machine}.{name} names {set(handler['ErrorEquals']) - possible}, which it never fails with")


@pytest.mark.parametrize("error", sorted(sagemaker_error_names("optimized") - SAGEMAKER_TRANSIENT_ERRORS))
def test_a_sagemaker_call_refused_for_good_is_not_retried(render, policies, error):
    for machine, name, state in tasks(render, policies):
        if state["Resource"].startswith("arn:aws:states:::sagemaker:"):
            retrier = first_retrier(state.get("Retry", []), error)
            assert retrier is None or retrier.get("MaxAttempts", 3) == 0, f"{machine}.{name} retries {error}"


def test_a_sagemaker_call_refused_for_the_quota_is_retried(render, policies):
    for machine, name, state in tasks(render, policies):
        if state["Resource"].startswith("arn:aws:states:::sagemaker:"):
            for error in SAGEMAKER_TRANSIENT_ERRORS:
                retrier = first_retrier(state["Retry"], error)
                assert retrier and retrier["MaxAttempts"] > 0, f"{machine}.{name} does not retry {error}"
