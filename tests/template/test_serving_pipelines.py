"""DeployPipeline and MonitorPipeline keep docs/architecture.md's contracts: exactly the documented
states, every Task caught and retried boundedly, polling loops bounded, payloads that the functions'
models accept, and names that line up with selfheal_shared.serving (the deploy execution name
TrainingPipeline computes in ASL is the one ApprovalFunction computes in Python)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from asl_rules import all_states, assert_delivered_with_retries_and_a_dead_letter_queue, assert_retried_boundedly
from selfheal_shared import serving
from selfheal_shared.serving_events import (
    Deployment,
    DeployRequest,
    MonitorRequest,
    MonitorWindow,
    RecordDeploymentRequest,
    SmokeTestRequest,
    ViolationRequest,
)

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
# Which request model each function's payloads must satisfy.
PAYLOADS = {
    "PrepareDeployFunctionArn": DeployRequest,
    "SmokeTestFunctionArn": SmokeTestRequest,
    "RecordDeploymentFunctionArn": RecordDeploymentRequest,
    "PrepareMonitorFunctionArn": MonitorRequest,
    "ViolationFunctionArn": ViolationRequest,
}
# Catches that do not go to RecordFailure, and why: SmokeTest's failure is a rollback, DescribeDeletedEndpoint's
# (Could not find endpoint) means the broken endpoint is gone, and RecordFailure itself ends the execution failed.
OTHER_CATCHES = {"SmokeTest": ("RollBack", "$.failure"), "DescribeDeletedEndpoint": ("RecreateEndpoint", "$.removed"),
                 "RecordFailure": ("Failed", "$.record_error")}


def documented_states(section: str) -> set[str]:
    text = ARCHITECTURE.split(f"### {section}", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"\*\*([^*]+)\*\*", text))


@pytest.fixture(scope="module")
def machines(render, policies) -> dict[str, dict[str, Any]]:
    return {name: render(policies, name) for name in ("DeployPipeline", "MonitorPipeline")}


def raw_tasks(name: str) -> dict[str, dict[str, Any]]:
    """The ASL file's Tasks before substitution (FunctionName still names its substitution)."""
    definition = json.loads((ROOT / "statemachines" / f"{name.replace('Pipeline', '').lower()}_pipeline.asl.json")
                            .read_text().replace("${SageMakerVpcConfig}", ""))
    return {k: v for k, v in definition["States"].items() if v["Type"] == "Task"}


@pytest.mark.parametrize(("machine", "start"), [("DeployPipeline", "PrepareDeploy"),
                                                ("MonitorPipeline", "PrepareMonitor")])
def test_each_pipeline_has_exactly_the_documented_states(machines, machine, start):
    # Given the states docs/architecture.md names for the state machine
    documented = documented_states(machine)
    # Then the ASL has exactly those, starts where the contract says, and fails under its own name
    definition = machines[machine]
    assert {name for name, _ in all_states(definition)} == documented
    assert definition["StartAt"] == start
    assert definition["States"]["Failed"] == {
        "Type": "Fail", "Comment": definition["States"]["Failed"]["Comment"], "Error": f"{machine}Failed",
        "CausePath": "States.Format('{}: {}', $.error.Error, $.error.Cause)"}


@pytest.mark.parametrize("machine", ["DeployPipeline", "MonitorPipeline"])
def test_every_transition_leads_to_a_state(machines, machine):
    states = machines[machine]["States"]
    for name, state in states.items():
        targets = [state.get("Next"), state.get("Default"), *[c["Next"] for c in state.get("Catch", [])],
                   *[c["Next"] for c in state.get("Choices", [])]]
        assert {t for t in targets if t} <= set(states), name
        assert state.get("End") or state["Type"] in {"Choice", "Fail"} or state.get("Next"), name


@pytest.mark.parametrize("machine", ["DeployPipeline", "MonitorPipeline"])
def test_every_task_is_caught_and_retried_boundedly(machines, machine):
    for name, state in machines[machine]["States"].items():
        if state["Type"] != "Task":
            continue
        # Then any error is caught: into RecordFailure at $.error, or where the contract says
        (catch,) = state["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"], name
        assert (catch["Next"], catch["ResultPath"]) == OTHER_CATCHES.get(name, ("RecordFailure", "$.error")), name
        # and every retry is bounded and backs off, Lambda's transient errors first
        assert_retried_boundedly(name, state)


@pytest.mark.parametrize(("choice", "counter"), [("EndpointStatus?", "CountPoll"),
                                                 ("RollBackStatus?", "CountRollBackPoll"),
                                                 ("RemovalStatus?", "CountRemovalPoll")])
def test_endpoint_polling_is_bounded(machines, choice, counter):
    # Given a polling loop of DeployPipeline: Wait -> Describe -> Count -> Choice
    states = machines["DeployPipeline"]["States"]
    # Then each pass adds one to the counter, and the choice leaves the loop at max_polls
    assert states[counter]["Parameters"] == {"count.$": "States.MathAdd($.polls.count, 1)"}
    assert states[counter]["Next"] == choice
    rules = states[choice]["Choices"]
    flat = [rule for top in rules for rule in top.get("Or", [top])]
    assert any(rule.get("Variable") == "$.polls.count"
               and rule.get("NumericGreaterThanEqualsPath") == "$.deploy.max_polls" for rule in flat)
    # and every wait is the deployment's poll interval
    waits = [s for s in states.values() if s["Type"] == "Wait"]
    assert len(waits) == 3 and all(w["SecondsPath"] == "$.deploy.poll_seconds" for w in waits)


def test_a_deployment_is_proved_before_it_is_recorded(machines):
    # Given DeployPipeline's decision on the endpoint's status
    states = machines["DeployPipeline"]["States"]
    first = states["EndpointStatus?"]["Choices"][0]
    # Then only InService on this deployment's own config goes to the smoke test, and only a passed
    # smoke test reaches RecordDeployment
    assert first["Next"] == "SmokeTest"
    assert {"Variable": "$.endpoint.EndpointStatus", "StringEquals": "InService"} in first["And"]
    assert {"Variable": "$.endpoint.EndpointConfigName",
            "StringEqualsPath": "$.deploy.endpoint_config_name"} in first["And"]
    assert [n for n, s in states.items() if s.get("Next") == "RecordDeployment"] == ["SmokeTest"]
    # and both records are the execution's output (TrainingPipeline reads outcome from it)
    for name in ("RecordDeployment", "RecordRolledBack"):
        assert states[name]["OutputPath"] == "$.Payload" and states[name]["End"] is True


@pytest.mark.parametrize("machine", ["DeployPipeline", "MonitorPipeline"])
def test_every_lambda_payload_is_one_its_function_accepts(fill, machine):
    # Given each Lambda task, filled from the pipeline's sample state
    for state in raw_tasks(machine).values():
        if state["Resource"] != "arn:aws:states:::lambda:invoke":
            continue
        function = state["Parameters"]["FunctionName"].strip("${}")
        sent = fill(state["Parameters"]["Payload"], machine=machine)
        # Then the function's request model accepts it
        PAYLOADS[function].model_validate(sent)


@pytest.mark.parametrize(("task", "model", "path"), [("PrepareDeploy", Deployment, "$.deploy"),
                                                     ("PrepareMonitor", MonitorWindow, "$.window")])
def test_what_the_pipelines_keep_is_everything_the_function_returns(machines, task, model, path):
    state = next(m["States"][task] for m in machines.values() if task in m["States"])
    assert state["ResultPath"] == path
    assert state["ResultSelector"] == {f"{field}.$": f"$.Payload.{field}" for field in model.model_fields}


def test_the_variant_is_the_one_autoscaling_and_capture_name(machines):
    config = machines["DeployPipeline"]["States"]["CreateEndpointConfig"]["Parameters"]
    assert [v["VariantName"] for v in config["ProductionVariants"]] == [serving.VARIANT]


def test_training_deploys_under_the_name_approval_uses(render, policies, fill):
    # Given TrainingPipeline's Deploy task, filled from its sample state
    deploy = render(policies, "TrainingPipeline")["States"]["Deploy"]
    sent = fill(deploy["Parameters"])
    package = sent["Input"]["model_package_arn"]
    # Then DeployPipeline runs under the name ApprovalFunction computes for the same package (so one
    # package never deploys twice), within Step Functions' 80 characters
    assert sent["Name"] == serving.deploy_execution_name(package) and len(sent["Name"]) <= 80
    assert sent["StateMachineArn"] == policies.physical("DeployPipeline")
    DeployRequest.model_validate(sent["Input"] | {"execution": sent["Name"]})
    # and the run goes on by the outcome DeployPipeline's records return
    assert deploy["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    outcome = render(policies, "TrainingPipeline")["States"]["DeployOutcome"]
    assert outcome["Choices"] == [{"Variable": "$.deploy_result.Output.outcome", "StringEquals": "deployed",
                                   "Next": "RecordDeployed"}]
    assert outcome["Default"] == "RecordRegistered"


def test_training_deploys_only_approved_packages(render, policies):
    choice = render(policies, "TrainingPipeline")["States"]["ApprovalChoice"]
    assert choice["Choices"] == [{"Variable": "$.register.approval_status", "StringEquals": "Approved",
                                  "Next": "Deploy"}]
    assert choice["Default"] == "RecordRegistered"


def test_the_functions_find_the_pipelines_and_the_schedule_group(policies):
    # Given the environment the functions get (name-based ARNs: a Ref would make a dependency cycle)
    function = policies.template["Resources"]["ApprovalFunction"]["Properties"]
    environment = policies.resolve(function["Environment"])["Variables"]
    # Then they are the state machines' and the schedule group's own
    assert environment["DEPLOY_PIPELINE_ARN"] == policies.physical("DeployPipeline")
    assert environment["MONITOR_PIPELINE_ARN"] == policies.physical("MonitorPipeline")
    assert environment["SCHEDULE_GROUP"] == policies.physical("MonitorScheduleGroup")
    assert environment["SCHEDULER_ROLE_ARN"] == policies.physical("MonitorSchedulerRole", "Arn")


def test_manual_approvals_reach_approval_with_retries_and_a_dead_letter_queue(raw_template):
    # Given the approval rule
    rule = raw_template["Resources"]["ApprovalRule"]["Properties"]
    # Then it matches approved packages of selfheal's package groups only
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [{"prefix": "selfheal-"}], "ModelApprovalStatus": ["Approved"]},
    }
    # and delivers to ApprovalFunction with bounded retries and a dead-letter queue
    assert_delivered_with_retries_and_a_dead_letter_queue(raw_template, "ApprovalRule", "ApprovalFunction",
                                                          "ApprovalDLQ")
    function = raw_template["Resources"]["ApprovalFunction"]["Properties"]
    assert function["DeadLetterQueue"]["TargetArn"] == {"Fn::GetAtt": ["ApprovalDLQ", "Arn"]}


def test_rollback_thresholds_and_polling_are_parameters(raw_template):
    parameters = raw_template["Parameters"]
    environment = raw_template["Globals"]["Function"]["Environment"]["Variables"]
    for variable, parameter in (("ROLLBACK_SERVER_ERRORS", "RollbackErrorThreshold"),
                                ("ROLLBACK_LATENCY_MS", "RollbackLatencyMs"),
                                ("DEPLOY_POLL_SECONDS", "DeployPollSeconds"),
                                ("DEPLOY_TIMEOUT_SECONDS", "DeployTimeoutSeconds")):
        assert environment[variable] == {"Ref": parameter} and parameters[parameter]["Type"] == "Number"
