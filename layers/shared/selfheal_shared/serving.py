"""The serving side of the loop (deploy, monitor, heal): its settings, its AWS clients and the names
of what it creates (docs/architecture.md, "Deploy and heal").

Kept apart from settings.py and aws.py, which the training side owns; same conventions: settings read
once into a typed model, clients created on first use and cached, `reset()` forgets both."""

from __future__ import annotations

import hashlib
import os
from functools import cache

from pydantic import Field

from selfheal_shared.names import check_model_name, job_prefix_for
from selfheal_shared.settings import EnvironmentSettings

VARIANT = "AllTraffic"  # the endpoint's one production variant (also in deploy_pipeline.asl.json)
SCHEDULE_NAME_MAX = 64  # EventBridge Scheduler
_STATES_ARN = r"^arn:aws[a-z-]*:states:"


class ServingSettings(EnvironmentSettings):
    """The template Globals the serving functions read (besides selfheal_shared.settings.Settings)."""

    deploy_pipeline_arn: str = Field(alias="DEPLOY_PIPELINE_ARN", pattern=_STATES_ARN)
    monitor_pipeline_arn: str = Field(alias="MONITOR_PIPELINE_ARN", pattern=_STATES_ARN)
    scheduler_role_arn: str = Field(alias="SCHEDULER_ROLE_ARN", pattern=r"^arn:aws[a-z-]*:iam::")
    schedule_group: str = Field(alias="SCHEDULE_GROUP", pattern=r"^[0-9a-zA-Z._-]{1,64}$")
    rollback_server_errors: int = Field(alias="ROLLBACK_SERVER_ERRORS", ge=1)
    rollback_latency_ms: int = Field(alias="ROLLBACK_LATENCY_MS", ge=1)
    deploy_poll_seconds: int = Field(alias="DEPLOY_POLL_SECONDS", ge=1, le=3600)
    deploy_timeout_seconds: int = Field(alias="DEPLOY_TIMEOUT_SECONDS", ge=600, le=28800)


@cache
def get_serving_settings() -> ServingSettings:
    return ServingSettings.from_environ(dict(os.environ))


def reset() -> None:
    """Forget the cached settings (tests change the environment; aws.reset() forgets the clients)."""
    get_serving_settings.cache_clear()


# Names. SageMaker names allow 63 characters; model names have at most 54 (names.MODEL_NAME).


def endpoint_name(model: str) -> str:
    return f"selfheal-{check_model_name(model)}"


def deployment_name(model: str, execution: str) -> str:
    """The SageMaker model and endpoint config of one DeployPipeline execution (unique per execution)."""
    return f"selfheal-{job_prefix_for(model, execution)}"


def deploy_execution_name(model_package_arn: str) -> str:
    """DeployPipeline's execution name for a package: "deploy-" + the SHA-256 of its ARN (71 characters).

    TrainingPipeline computes the same in ASL (States.Hash has no substring), so a package approved
    twice, or by both paths, maps to one execution."""
    return "deploy-" + hashlib.sha256(model_package_arn.encode("utf-8")).hexdigest()


def schedule_name(model: str) -> str:
    name = f"selfheal-monitor-{check_model_name(model)}"
    if len(name) <= SCHEDULE_NAME_MAX:
        return name
    digest = hashlib.sha256(model.encode("utf-8")).hexdigest()[:12]
    return f"{name[: SCHEDULE_NAME_MAX - len(digest) - 1]}-{digest}"


def rollback_alarm_names(model: str) -> dict[str, str]:
    """The endpoint's auto-rollback alarms, by the variant metric each watches."""
    endpoint = endpoint_name(model)
    return {"Invocation5XXErrors": f"{endpoint}-5xx-errors", "ModelLatency": f"{endpoint}-model-latency"}


def scalable_resource_id(model: str) -> str:
    """Application Auto Scaling's id of the endpoint's variant."""
    return f"endpoint/{endpoint_name(model)}/variant/{VARIANT}"
