"""Where a serving container finds its code, as the XGBoost 3.0-5 container's script-mode start does
(serving.py: sagemaker-containers ServingEnv and modules.import_module, run for real): SAGEMAKER_PROGRAM in the
directory SAGEMAKER_SUBMIT_DIRECTORY names, fetched into /opt/ml/code; with no route to AWS under network isolation.
A container whose code cannot be found or fetched never passes its health check, and the endpoint fails."""

from __future__ import annotations

from selfheal_bench.fixtures.containers import BUCKET, tarball

from .user_code import CODE, IN_MODEL, ISOLATED_ENV


def test_under_isolation_an_s3_submit_directory_never_passes_the_health_check(serve):
    # Given the code's S3 URL as SAGEMAKER_SUBMIT_DIRECTORY on an isolated model
    endpoint = serve(IN_MODEL, ISOLATED_ENV | {"SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/models/m/"
                                                                            "model.tar.gz"})
    # Then the toolkit cannot download it, the server never starts, and the endpoint fails
    assert endpoint.status == "Failed"
    assert "NoCredentialsError: Unable to locate credentials" in endpoint.failure_reason


def test_with_network_access_an_s3_submit_directory_is_fetched(s3, serve):
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball(CODE))
    endpoint = serve({"model.json": "{}"}, ISOLATED_ENV | {
        "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{BUCKET}/code/sourcedir.tar.gz"}, isolated=False)
    assert endpoint.status == "InService", endpoint.failure_reason


def test_code_at_the_model_root_is_not_where_the_toolkit_looks(serve):
    # Given inference.py beside the model files, and no SAGEMAKER_SUBMIT_DIRECTORY
    endpoint = serve(CODE | {"model.json": "{}"}, {"SAGEMAKER_PROGRAM": "inference.py"})
    # Then the toolkit's code directory is empty: the module is not found and the model never loads
    assert endpoint.status == "Failed"
    assert "Please provide a model_fn implementation" in endpoint.failure_reason


def test_without_a_program_the_container_would_serve_its_built_in_algorithm_which_is_refused(serve):
    endpoint = serve(IN_MODEL, {"SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"})
    assert endpoint.status == "Failed" and "no SAGEMAKER_PROGRAM" in endpoint.failure_reason
