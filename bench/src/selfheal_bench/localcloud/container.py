"""What runs inside a SageMaker container here: the environment it sees, and its start by the real toolkit.

A container gets no route to AWS. AWS: "If you enable network isolation, the containers can't make any outbound
network calls, even to other AWS services such as Amazon S3. Additionally, no AWS credentials are made available to
the container runtime environment" (SageMaker Developer Guide, "Run Training and Inference Containers in
Internet-Free Mode"); SageMaker itself downloads the inputs and uploads the outputs. Here the local cloud's S3 lives
in this process, so no container can reach it, isolated or not (stricter than AWS for containers without isolation).
A container's environment is its own, as an image's is, not this machine's: nothing of the machine's AWS setup leaks
in (no AWS_* variables, no ~/.aws, no instance metadata).

A framework container starts its user code with the script-mode toolkit (toolkit/start_container.py), run for real
with .venv-toolkit's interpreter: where it looks for the code, how it fetches it, and how it fails when it cannot.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from selfheal.project import find_project

START_CONTAINER = Path(__file__).resolve().parent / "toolkit" / "start_container.py"
_START_TIMEOUT_SECONDS = 120


class ToolkitMissing(RuntimeError):
    """The containers' toolkit environment (.venv-toolkit) is not installed: `make setup` installs it."""


class ContainerStartFailed(RuntimeError):
    """The container's toolkit could not start the user code; `failure` is the toolkit's own message."""

    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


@dataclass(frozen=True)
class Started:
    """What the toolkit resolved: the user module and, for training, its arguments and SM_* environment."""

    module_name: str | None
    module_dir: str
    user_entry_point: str | None
    code_dir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def toolkit_python() -> Path:
    python = Path(os.environ.get("SELFHEAL_TOOLKIT_PYTHON", find_project() / ".venv-toolkit" / "bin" / "python"))
    if not python.exists():
        raise ToolkitMissing(f"{python} does not exist: `make setup` installs the containers' toolkit "
                             "(sagemaker-containers on Python 3.9) the local cloud starts containers with")
    return python


def container_env(home: Path, region: str) -> dict[str, str]:
    """The environment a container's processes start with: built from nothing, as an image's ENV (also because
    os.environ changes under other threads here, while Lambda handlers run with their functions' variables)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": str(home),  # its own: no ~/.aws, pip or tool configuration comes along
        # SageMaker names the region in the container; the toolkits read it first (sagemaker-containers
        # _files.s3_download: AWS_REGION, then SAGEMAKER_REGION).
        "AWS_REGION": region,
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        # The instance metadata service is out of reach from an isolated container: fail at once, not after
        # botocore's connection timeout.
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def start_user_code(kind: str, base_dir: Path, env: dict[str, str], log: Path, fetched: Path | None = None) -> Started:
    """Run the toolkit's container start (`kind` training or serving) on the container whose /opt/ml is base_dir.

    `fetched` is the code archive the local cloud downloaded for an s3:// module_dir, for a container with network
    access; without it an s3:// module_dir is fetched by the toolkit itself, with the container's (absent) credentials.
    """
    command = [str(toolkit_python()), "-I", str(START_CONTAINER), kind, *([str(fetched)] if fetched else [])]
    toolkit_env = env | {"SAGEMAKER_BASE_DIR": str(base_dir), "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    with open(log, "ab") as stderr:
        # The toolkit's own entry, as the container would run it: an argv list, no shell.
        done = subprocess.run(command, env=toolkit_env, stdout=subprocess.PIPE, stderr=stderr,  # noqa: S603
                              timeout=_START_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0:
        failure = base_dir / "output" / "failure"
        raise ContainerStartFailed(failure.read_text() if failure.exists() else _tail(log))
    started = json.loads(done.stdout)
    return Started(started["module_name"], started["module_dir"], started["user_entry_point"], base_dir / "code",
                   started.get("args", []), started.get("env", {}))


def _tail(log: Path, lines: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
