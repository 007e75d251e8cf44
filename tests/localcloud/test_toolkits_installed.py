"""The real toolkits the local cloud runs are installed, at the versions the XGBoost 3.0-5 container pins
(aws/sagemaker-xgboost-container requirements.txt): `make setup` installs them, and a missing one fails here
instead of letting a kinder re-implementation stand in."""

from __future__ import annotations

import subprocess
from importlib.metadata import version

from selfheal_bench.localcloud.container import toolkit_python


def test_the_script_mode_toolkit_imports_in_its_own_environment(tmp_path):
    # Given .venv-toolkit (make setup); When its Python imports sagemaker-containers' container start
    probe = ("import importlib.metadata as m; from sagemaker_containers import _env, _files; "
             "print(m.version('sagemaker-containers'))")
    done = subprocess.run([str(toolkit_python()), "-c", probe], capture_output=True, text=True, check=False,
                          env={"PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python", "SAGEMAKER_BASE_DIR": str(tmp_path)})
    # Then it is the version the container runs
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2.8.6.post2"


def test_the_serving_toolkit_is_the_one_the_container_serves_with():
    assert version("sagemaker-inference") == "1.5.5"
