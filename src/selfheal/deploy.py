"""`selfheal deploy --env dev`: deploy the SAM application to AWS with the job code it runs.

1. CodeVersion = a content hash of ml/*.py, so every run records exactly which code it ran.
2. The XGBoost and scikit-learn container image URIs for the stack's region, from the sagemaker SDK
   (a deploy-time dependency in its own environment: it is large and pins its own libraries).
3. `sam build`, then `sam deploy --config-env <env>` with samconfig.toml's parameter overrides plus
   CodeVersion and the image URIs (SAM replaces, not merges, overrides given on the command line).
4. ml/ published to s3://<DataBucketName output>/code/<version>/: each .py and sourcedir.tar.gz of
   them. When the stack already exists this happens before the deploy, so no run can start on a
   version whose code is not there yet.

`--dry-run` prints the commands and parameters and calls no AWS API.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .code import CodeError, code_keys, code_version, publish_code
from .project import ProjectNotFound, find_project

XGBOOST_VERSION = "3.0-5"
SKLEARN_VERSION = "1.9-0"

# Runs in the sagemaker SDK's environment when the SDK is not importable here. It only reads the
# SDK's bundled image tables: no AWS call.
_RESOLVE_IMAGES = """
import json, sys
from sagemaker.core import image_uris
region, xgboost, sklearn = sys.argv[1:4]
print(json.dumps({
    "XGBoostImageUri": image_uris.retrieve(framework="xgboost", region=region, version=xgboost, image_scope="training"),
    "SKLearnImageUri": image_uris.retrieve(framework="sklearn", region=region, version=sklearn, image_scope="training"),
}))
"""


class DeployError(Exception):
    """The deploy cannot go on; the message says why and what to do."""


class UnknownEnvironment(DeployError):
    """samconfig.toml has no such environment: bad input, refused before anything ran."""


@dataclass(frozen=True)
class Environment:
    """One samconfig.toml environment, as far as deploying needs it."""

    name: str
    stack_name: str
    region: str
    parameter_overrides: dict[str, str]


def read_environment(samconfig: Path, env: str) -> Environment:
    config = tomllib.loads(samconfig.read_text())
    if env not in config:
        known = sorted(k for k, v in config.items() if isinstance(v, dict))
        raise UnknownEnvironment(f"{samconfig} has no environment {env!r} (known: {', '.join(known)})")
    deploy = config[env].get("deploy", {}).get("parameters", {})
    region = deploy.get("region") or config[env].get("global", {}).get("parameters", {}).get("region")
    if not deploy.get("stack_name") or not region:
        raise DeployError(f"{samconfig} [{env}.deploy.parameters] needs stack_name and region")
    return Environment(env, deploy["stack_name"], region, parse_overrides(deploy.get("parameter_overrides", [])))


def parse_overrides(value: str | list[str]) -> dict[str, str]:
    """samconfig's parameter_overrides, as a list of "Key=Value" or one space-separated string."""
    items = value if isinstance(value, list) else shlex.split(value)
    overrides = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise DeployError(f"parameter override {item!r} is not Key=Value")
        overrides[key] = val
    return overrides


def resolve_image_uris(region: str, sagemaker_python: str | None = None) -> dict[str, str]:
    """XGBoost and scikit-learn framework images for `region`, from the sagemaker SDK."""
    try:
        from sagemaker.core import image_uris
    except ImportError:
        python = sagemaker_python or _sagemaker_python()
        result = subprocess.run(  # noqa: S603 - a fixed script run by the SDK's own interpreter
            [python, "-c", _RESOLVE_IMAGES, region, XGBOOST_VERSION, SKLEARN_VERSION],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise DeployError(f"resolving image URIs with {python} failed:\n{result.stderr.strip()}") from None
        return json.loads(result.stdout)
    return {
        "XGBoostImageUri": image_uris.retrieve(
            framework="xgboost", region=region, version=XGBOOST_VERSION, image_scope="training"
        ),
        "SKLearnImageUri": image_uris.retrieve(
            framework="sklearn", region=region, version=SKLEARN_VERSION, image_scope="training"
        ),
    }


def _sagemaker_python() -> str:
    configured = os.environ.get("SELFHEAL_SAGEMAKER_PYTHON")
    if configured:
        return configured
    default = find_project() / ".venv-deploy" / "bin" / "python"
    if default.exists():
        return str(default)
    raise DeployError(
        "the sagemaker SDK is needed to resolve image URIs: "
        "python3 -m venv .venv-deploy && .venv-deploy/bin/pip install sagemaker "
        "(or set SELFHEAL_SAGEMAKER_PYTHON to an interpreter that has it)"
    )


def _sam() -> str:
    bundled = find_project() / ".venv-sam" / "bin" / "sam"
    found = str(bundled) if bundled.exists() else shutil.which("sam")
    if not found:
        raise DeployError("SAM CLI not found: python3 -m venv .venv-sam && .venv-sam/bin/pip install aws-sam-cli")
    return found


def deploy_parameters(environment: Environment, version: str, images: dict[str, str]) -> dict[str, str]:
    return {**environment.parameter_overrides, "CodeVersion": version, **images}


def sam_commands(sam: str, environment: Environment, parameters: dict[str, str]) -> list[list[str]]:
    overrides = [f"{key}={value}" for key, value in parameters.items()]
    return [
        [sam, "build", "--config-env", environment.name],
        [sam, "deploy", "--config-env", environment.name, "--parameter-overrides", *overrides],
    ]


def stack_outputs(stack_name: str, region: str) -> dict[str, str] | None:
    """The stack's outputs, or None when it does not exist yet."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("cloudformation", region_name=region)
    try:
        stack = client.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    if stack["StackStatus"].endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {stack_name} is {stack['StackStatus']}: wait for it to settle")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _build_path() -> str:
    """PATH with a python3.12 on it: `sam build` needs the functions' runtime version (pyenv has one here)."""
    path = os.environ.get("PATH", "")
    if shutil.which("python3.12"):
        return path
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found = sorted(pyenv.glob("3.12*/bin/python3.12"))
    return f"{found[-1].parent}{os.pathsep}{path}" if found else path


def _run(command: Sequence[str], cwd: Path) -> None:
    print("$ " + shlex.join(command), flush=True)
    env = dict(os.environ, PATH=_build_path(), SAM_CLI_TELEMETRY=os.environ.get("SAM_CLI_TELEMETRY", "0"))
    if subprocess.run(command, cwd=cwd, env=env, check=False).returncode != 0:  # noqa: S603 - our own argv
        raise DeployError(f"{command[1]} failed; see its output above")


DESCRIPTION = __doc__.split("\n\n")[0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfheal deploy", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The deploy options, for `selfheal deploy` and `python -m selfheal.deploy` alike."""
    parser.add_argument("--env", default="dev", help="samconfig.toml environment (default: dev)")
    parser.add_argument("--dry-run", action="store_true", help="print what would run; call no AWS API")
    parser.add_argument("--root", type=Path, help="project root (template.yaml, samconfig.toml, ml/; default: the "
                                                   "folder holding template.yaml, from here upward)")
    parser.add_argument("--sagemaker-python", help="interpreter with the sagemaker SDK (default: .venv-deploy)")


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Exit codes as every selfheal command: 0 deployed (or planned), 1 the deploy failed, 2 bad input."""
    try:
        root: Path = args.root or find_project()
        ml_dir = root / "ml"
        environment = read_environment(root / "samconfig.toml", args.env)
        version = code_version(ml_dir)
        try:
            images = resolve_image_uris(environment.region, args.sagemaker_python)
        except (DeployError, CodeError) as error:
            if not args.dry_run:
                raise
            print(f"note: {error}", file=sys.stderr)
            images = {"XGBoostImageUri": "<from the sagemaker SDK>", "SKLearnImageUri": "<from the sagemaker SDK>"}
        parameters = deploy_parameters(environment, version, images)
        commands = sam_commands("sam" if args.dry_run else _sam(), environment, parameters)
        print(f"environment {environment.name}: stack {environment.stack_name} in {environment.region}")
        for key, value in parameters.items():
            print(f"  {key} = {value}")
        if args.dry_run:
            for command in commands:
                print("$ " + shlex.join(command))
            for key in code_keys(version, ml_dir):
                print(f"publish s3://<DataBucketName of {environment.stack_name}>/{key}")
            return 0
        outputs = stack_outputs(environment.stack_name, environment.region)
        if outputs is not None:
            _publish(outputs, version, ml_dir, environment)
        for command in commands:
            _run(command, root)
        if outputs is None:
            outputs = stack_outputs(environment.stack_name, environment.region) or {}
            _publish(outputs, version, ml_dir, environment)
    except (DeployError, CodeError, ProjectNotFound) as error:
        print(f"selfheal deploy: {error}", file=sys.stderr)
        return 2 if isinstance(error, UnknownEnvironment | ProjectNotFound) else 1
    print(f"deployed {environment.stack_name} with code version {version}")
    return 0


def _publish(outputs: dict[str, Any], version: str, ml_dir: Path, environment: Environment) -> None:
    bucket = outputs.get("DataBucketName")
    if not bucket:
        raise DeployError(f"stack {environment.stack_name} has no DataBucketName output")
    import boto3

    for uri in publish_code(boto3.client("s3", region_name=environment.region), bucket, version, ml_dir):
        print(f"published {uri}")


if __name__ == "__main__":
    sys.exit(main())
