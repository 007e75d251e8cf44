"""What SageMaker refuses when an endpoint is updated: the status it must be in (botocore's
EndpointStatus) and the blue/green DeploymentConfig it accepts (botocore's BlueGreenUpdatePolicy and
TrafficRoutingConfig; "Exclusions" of the deployment guardrails guide)."""

from __future__ import annotations

from typing import Any

from .sagemaker_jobs import ValidationException

# EndpointStatus values another operation is changing: no update or delete starts from them.
IN_PROGRESS = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"})
# BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds' upper bound, used when none is given.
MAX_EXECUTION_SECONDS = 28800


def check_updatable(arn: str, status: str) -> None:
    """UpdateEndpoint starts only from InService. A Failed endpoint accepts only DeleteEndpoint; stricter
    than documented, UpdateRollbackFailed (whose documented remedy is for rolling deployments) too."""
    if status == "InService":
        return
    if status == "Failed":
        raise ValidationException(f"Cannot update failed endpoint \"{arn}\": DeleteEndpoint is the only operation "
                                  "a Failed endpoint accepts.")
    if status in IN_PROGRESS:
        raise ValidationException(f"Cannot update in-progress endpoint \"{arn}\".")
    raise ValidationException(f"Cannot update endpoint \"{arn}\" in status {status}.")


def check_deletable(arn: str, status: str) -> None:
    """Stricter than documented: an endpoint another operation is changing is not deleted under it."""
    if status in IN_PROGRESS:
        raise ValidationException(f"Cannot delete in-progress endpoint \"{arn}\" (status {status}).")


def check_deployment(old: dict[str, Any], new: dict[str, Any], deployment: dict[str, Any],
                     alarms: set[str]) -> None:
    """A blue/green DeploymentConfig from endpoint config `old` to `new`; `alarms` are the alarm names
    that exist in the account."""
    serving = {v["VariantName"]: v for v in old["ProductionVariants"]}
    names = sorted(v["VariantName"] for v in new["ProductionVariants"])
    if sorted(serving) != names:
        raise ValidationException(f"A blue/green deployment keeps the variant names: {sorted(serving)}, not {names}.")
    policy = deployment.get("BlueGreenUpdatePolicy", {})
    routing = policy.get("TrafficRoutingConfiguration", {})
    waits = routing.get("WaitIntervalInSeconds", 0) + policy.get("TerminationWaitInSeconds", 0)
    if policy.get("MaximumExecutionTimeoutInSeconds", MAX_EXECUTION_SECONDS) <= waits:
        raise ValidationException("MaximumExecutionTimeoutInSeconds must be larger than WaitIntervalInSeconds plus "
                                  "TerminationWaitInSeconds.")
    instances = min(v.get("InitialInstanceCount", 1) for v in serving.values())
    for key, lowest in (("CanarySize", 0.0), ("LinearStepSize", 10.0)):  # canary: (0, 50]%; linear: [10, 50]%
        size = routing.get(key)
        share = size and (size["Value"] if size["Type"] == "CAPACITY_PERCENT" else 100 * size["Value"] / instances)
        if size and not (lowest <= share <= 50 and share > 0):
            raise ValidationException(f"{key} {size} does not fit the variant's {instances} instances (canary: at "
                                      "most 50%; linear steps: 10-50%).")
    wanted = {a["AlarmName"] for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])}
    if wanted - alarms:  # stricter than documented: an alarm that does not exist cannot guard the update
        raise ValidationException(f"Auto-rollback alarms do not exist: {sorted(wanted - alarms)}.")
