"""Names and URIs: what becomes S3 keys, execution names and SageMaker names stays valid."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from selfheal_shared.errors import InvalidName, InvalidS3Uri
from selfheal_shared.names import MODEL_NAME, check_model_name, job_prefix_for, run_id_for
from selfheal_shared.s3uri import S3Uri, s3_uri

SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
model_names = st.from_regex(MODEL_NAME, fullmatch=True)


def test_run_id_is_deterministic_from_model_trigger_and_cause():
    first = run_id_for("churn", "upload", "bucket/incoming/churn/a.csv/v1")

    assert first == run_id_for("churn", "upload", "bucket/incoming/churn/a.csv/v1")
    assert first != run_id_for("churn", "upload", "bucket/incoming/churn/a.csv/v2")
    assert re.fullmatch(r"churn-upload-[0-9a-f]{12}", first)


@given(model_names, st.sampled_from(["upload", "drift", "manual"]), st.text())
def test_run_ids_fit_execution_names_and_job_prefixes_fit_sagemaker(model, trigger, cause):
    run_id = run_id_for(model, trigger, cause)
    prefix = job_prefix_for(model, cause)

    assert len(run_id) <= 80 and re.fullmatch(r"[A-Za-z0-9-]+", run_id)
    assert len(prefix) <= 40 and SAGEMAKER_NAME.match(prefix)
    assert SAGEMAKER_NAME.match(f"{prefix}-train-12") and len(f"{prefix}-train-12") <= 63
    assert SAGEMAKER_NAME.match(f"selfheal-{model}")


@pytest.mark.parametrize("model", ["", "churn_v2", "-churn", "churn-", "a" * 55, "../etc", "churn model", "ünïcode"])
def test_model_names_that_cannot_name_sagemaker_resources_are_refused(model):
    with pytest.raises(InvalidName):
        check_model_name(model)


def test_a_trigger_with_odd_characters_is_refused():
    with pytest.raises(InvalidName):
        run_id_for("churn", "Up Load!", "x")


def test_s3_uris_parse_and_join_without_doubled_slashes():
    base = S3Uri.parse("s3://my-bucket/artifacts/churn/")

    assert (base.bucket, base.key) == ("my-bucket", "artifacts/churn/")
    assert str(base.join("/run-1/", "input", "config.json")) == "s3://my-bucket/artifacts/churn/run-1/input/config.json"
    assert s3_uri("my-bucket", "code", "v1") == "s3://my-bucket/code/v1"
    assert str(S3Uri.parse("s3://my-bucket")) == "s3://my-bucket/"


@pytest.mark.parametrize("text", ["https://b/k", "s3:/b/k", "s3://", "s3://UPPER/k", "s3://b/k", None, 5])
def test_things_that_are_not_s3_uris_raise_invalid_s3_uri(text):
    with pytest.raises(InvalidS3Uri):
        S3Uri.parse(text)
