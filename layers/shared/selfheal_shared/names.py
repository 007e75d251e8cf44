"""Names that end up in S3 keys, DynamoDB keys, Step Functions execution names and SageMaker
resource names, so they must be valid for all of them (docs/architecture.md, "Starting a run")."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import AfterValidator

from selfheal_shared.errors import InvalidName

# SageMaker's name pattern; 54 characters so that the package group "selfheal-<model>" stays within 63.
MODEL_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,53}")
TRIGGER = re.compile(r"[a-z][a-z0-9]{0,15}")
SAGEMAKER_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# Step Functions execution names: 1-80 characters, none of whitespace, brackets, wildcards,
# punctuation, or control characters; our run ids use the model-name alphabet only.
RUN_ID = re.compile(r"[a-zA-Z0-9-]{1,80}")

JOB_PREFIX_MAX = 40


def check_model_name(model: str) -> str:
    if not MODEL_NAME.fullmatch(model):
        raise InvalidName(
            f"model name {model!r} is not allowed: use 1-54 letters, digits and inner hyphens "
            "(it becomes part of SageMaker names)"
        )
    return model


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id):
        raise InvalidName(f"run id {run_id!r} is not allowed: use 1-80 letters, digits and hyphens")
    return run_id


ModelName = Annotated[str, AfterValidator(check_model_name)]
RunId = Annotated[str, AfterValidator(check_run_id)]


def cause_hash(cause_id: str) -> str:
    return hashlib.sha256(cause_id.encode("utf-8")).hexdigest()[:12]


def run_id_for(model: str, trigger: str, cause_id: str) -> str:
    """Deterministic, so a duplicate event maps to the same execution name."""
    check_model_name(model)
    if not TRIGGER.fullmatch(trigger):
        raise InvalidName(f"trigger {trigger!r} is not allowed: use 1-16 lowercase letters and digits")
    return f"{model[:40]}-{trigger}-{cause_hash(cause_id)}"


def job_prefix_for(model: str, cause_id: str) -> str:
    """`<model>-<hash>` within 40 characters, so `<prefix>-<step>-<retry>` fits SageMaker's 63."""
    check_model_name(model)
    digest = cause_hash(cause_id)
    return f"{model[: JOB_PREFIX_MAX - len(digest) - 1].rstrip('-')}-{digest}"
