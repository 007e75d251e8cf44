"""The environment every function gets (template Globals), read once into a typed model."""

from __future__ import annotations

import os
from functools import cache
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal_shared.errors import SettingsError

DEFAULT_MAX_UPLOAD_BYTES = 1024**3


class EnvironmentSettings(BaseModel):
    """Settings read from environment variables (each field's alias); a bad one names every problem."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> Self:
        try:
            return cls.model_validate(environ)
        except ValidationError as error:
            problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()]
            raise SettingsError("environment: " + "; ".join(problems)) from None


class Settings(EnvironmentSettings):
    service_name: str = Field("selfheal", alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    metrics_namespace: str = Field("selfheal", alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
    ledger_table: str = Field(alias="LEDGER_TABLE", min_length=1)
    data_bucket: str = Field(alias="DATA_BUCKET", min_length=3)
    notify_topic_arn: str = Field(alias="NOTIFY_TOPIC_ARN", pattern=r"^arn:aws[a-z-]*:sns:")
    training_pipeline_arn: str = Field(alias="TRAINING_PIPELINE_ARN", pattern=r"^arn:aws[a-z-]*:states:")
    code_version: str = Field(alias="CODE_VERSION", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    xgboost_image_uri: str = Field(alias="XGBOOST_IMAGE_URI", min_length=1)
    kms_key_arn: str = Field(alias="KMS_KEY_ARN", pattern=r"^arn:aws[a-z-]*:kms:")
    max_upload_bytes: int = Field(DEFAULT_MAX_UPLOAD_BYTES, alias="MAX_UPLOAD_BYTES", gt=0)


@cache
def get_settings() -> Settings:
    return Settings.from_environ(dict(os.environ))


def reset_settings() -> None:
    """Forget the cached settings (tests and the local cloud change the environment)."""
    get_settings.cache_clear()
