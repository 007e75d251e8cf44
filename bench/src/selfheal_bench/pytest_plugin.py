"""The bench as a pytest plugin (entry point `pytest11`): the fixtures every test folder shares, and the product's
code roots on the import path as Lambda and SageMaker's containers have them (selfheal_bench.code_roots).

Two names mean different things in different folders and are chosen there by a conftest alias: `cloud` is the
moto account here and the whole local cloud (`local_cloud`) in tests/e2e and tests/reliability; `hosting` is
SageMaker hosting on moto here and the containers' hosting service (`container_hosting`) in tests/localcloud.
"""

from __future__ import annotations

import pytest

from selfheal.project import ProjectNotFound, find_project

from .code_roots import add_code_roots
from .fixtures.aws import aws_env, cloud, lambda_context
from .fixtures.containers import container_hosting, jobs, module_hosting, run_job, s3, serve
from .fixtures.hosting import hosting
from .fixtures.local import inbox, load_handler, local_cloud
from .fixtures.serving import endpoint, serving_cloud, serving_env

__all__ = ["aws_env", "cloud", "container_hosting", "endpoint", "hosting", "inbox", "jobs", "lambda_context",
           "load_handler", "local_cloud", "module_hosting", "run_job", "s3", "serve", "serving_cloud", "serving_env"]


def pytest_configure(config: pytest.Config) -> None:
    try:
        project = find_project(config.rootpath)
    except ProjectNotFound:
        return  # pytest run outside a SAM project: the fixtures still load, there are no code roots to add
    add_code_roots(project)
