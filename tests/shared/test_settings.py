"""Settings: the template's environment, read once into a typed model."""

import pytest
from selfheal_shared import aws
from selfheal_shared.errors import SettingsError
from selfheal_shared.settings import get_settings, reset_settings


def test_settings_are_read_from_the_environment_once(aws_env, monkeypatch):
    settings = get_settings()
    monkeypatch.setenv("DATA_BUCKET", "another-bucket")

    assert settings.data_bucket == aws_env["DATA_BUCKET"]
    assert get_settings() is settings
    assert settings.max_upload_bytes == int(aws_env["MAX_UPLOAD_BYTES"])

    reset_settings()
    assert get_settings().data_bucket == "another-bucket"


def test_a_missing_or_malformed_variable_is_named(aws_env, monkeypatch):
    monkeypatch.delenv("LEDGER_TABLE")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "lots")
    reset_settings()

    with pytest.raises(SettingsError, match="LEDGER_TABLE: Field required.*MAX_UPLOAD_BYTES"):
        get_settings()


def test_clients_are_cached_until_reset(aws_env):
    first = aws.client("s3")

    assert aws.client("s3") is first
    aws.reset()
    assert aws.client("s3") is not first
