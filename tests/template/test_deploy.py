"""`selfheal deploy`: the pure parts (code version, sourcedir tarball, samconfig environments,
the commands it runs), image URI resolution when the sagemaker SDK is at hand, and a dry run."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from selfheal import code, deploy

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"train.py": "print('train')\n", "features.py": "X = 1\n", "preprocess.py": "print('prep')\n"}


@pytest.fixture
def ml_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "ml"
    folder.mkdir()
    for name, text in SCRIPTS.items():
        (folder / name).write_text(text)
    return folder


def test_code_version_is_a_content_hash_of_the_scripts(ml_dir, tmp_path):
    # Given the job scripts, and a copy of them written in another order
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in reversed(list(SCRIPTS)):
        (copy / name).write_text(SCRIPTS[name])
    # When their versions are computed
    version = code.code_version(ml_dir)
    # Then the version is short, stable, and the same for the same content
    assert len(version) == 16 and version == code.code_version(ml_dir) == code.code_version(copy)
    # and anything but a .py file leaves it alone, while any change to a script changes it
    (ml_dir / "notes.txt").write_text("ignored")
    (ml_dir / "__pycache__").mkdir()
    assert code.code_version(ml_dir) == version
    (ml_dir / "train.py").write_text("print('train v2')\n")
    assert code.code_version(ml_dir) != version
    (copy / "train.py").rename(copy / "train2.py")
    assert code.code_version(copy) != version


def test_sourcedir_tarball_holds_the_scripts_at_its_root_reproducibly(ml_dir):
    # When the tarball is built twice
    first, second = code.sourcedir_tarball(ml_dir), code.sourcedir_tarball(ml_dir)
    # Then the bytes are identical (so re-publishing the same version changes nothing)
    assert first == second
    # and it holds each script at the root, as script mode expects sagemaker_program there
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert members == SCRIPTS
    assert gzip.decompress(first)  # plain gzip, as SageMaker's toolkit reads it


def test_no_scripts_is_a_clear_error(tmp_path):
    # Given an empty ml/ folder
    # Then computing a version says what is missing
    with pytest.raises(code.CodeError, match=r"no job scripts"):
        code.code_version(tmp_path)


def test_samconfig_environments_name_their_stacks_and_environment():
    # Given the repository's samconfig.toml
    for env, stack in (("dev", "selfheal-dev"), ("prod", "selfheal-prod"), ("default", "selfheal-dev")):
        # When an environment is read
        environment = deploy.read_environment(ROOT / "samconfig.toml", env)
        # Then it names its stack and region, and sets the template's Environment parameter
        assert environment.stack_name == stack and environment.region
        assert environment.parameter_overrides["Environment"] == ("prod" if env == "prod" else "dev")


def test_unknown_environment_is_refused(tmp_path):
    with pytest.raises(deploy.DeployError, match=r"no environment 'staging'"):
        deploy.read_environment(ROOT / "samconfig.toml", "staging")


def test_overrides_parse_from_a_list_or_a_string():
    assert deploy.parse_overrides(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}
    assert deploy.parse_overrides('A=1 B="two words"') == {"A": "1", "B": "two words"}
    with pytest.raises(deploy.DeployError):
        deploy.parse_overrides(["novalue"])


def test_sam_commands_carry_every_override_because_sam_does_not_merge_them():
    # Given an environment with its own overrides, a code version and image URIs
    environment = deploy.Environment(
        "prod", "selfheal-prod", "eu-west-1", {"Environment": "prod", "LogRetentionDays": "365"}
    )
    images = {"XGBoostImageUri": "x.dkr.ecr/xgb:1", "SKLearnImageUri": "x.dkr.ecr/sk:1"}
    parameters = deploy.deploy_parameters(environment, "abc123", images)
    # When the commands are built
    build, sam_deploy = deploy.sam_commands("sam", environment, parameters)
    # Then build and deploy use the environment, and deploy passes samconfig's overrides plus ours
    assert build == ["sam", "build", "--config-env", "prod"]
    assert sam_deploy[:5] == ["sam", "deploy", "--config-env", "prod", "--parameter-overrides"]
    assert sam_deploy[5:] == [
        "Environment=prod",
        "LogRetentionDays=365",
        "CodeVersion=abc123",
        "XGBoostImageUri=x.dkr.ecr/xgb:1",
        "SKLearnImageUri=x.dkr.ecr/sk:1",
    ]


def test_published_keys_are_the_scripts_and_the_tarball_under_the_version(ml_dir):
    assert code.code_keys("v1", ml_dir) == [
        "code/v1/features.py",
        "code/v1/preprocess.py",
        "code/v1/train.py",
        "code/v1/sourcedir.tar.gz",
    ]


def test_image_uris_come_from_the_sagemaker_sdk_for_the_region(setup_tool):
    setup_tool(ROOT / ".venv-deploy" / "bin" / "python", "the sagemaker SDK's environment")
    # When the images are resolved for a region (offline: the SDK's bundled tables)
    images = deploy.resolve_image_uris("eu-west-1")
    # Then they are that region's XGBoost and scikit-learn framework images, at the pinned versions
    assert images["XGBoostImageUri"].endswith(
        f".dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:{deploy.XGBOOST_VERSION}"
    )
    assert (
        f".dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:{deploy.SKLEARN_VERSION}-"
        in images["SKLearnImageUri"]
    )


def test_dry_run_prints_the_plan_and_calls_no_aws(tmp_path, ml_dir, capsys, monkeypatch):
    # Given a project root with samconfig.toml and ml/, and no AWS at all
    (tmp_path / "samconfig.toml").write_text((ROOT / "samconfig.toml").read_text())
    monkeypatch.setattr(deploy, "stack_outputs", lambda *a: pytest.fail("dry run called AWS"))
    monkeypatch.setattr(deploy, "publish_code", lambda *a: pytest.fail("dry run called AWS"))
    monkeypatch.setattr(
        deploy,
        "resolve_image_uris",
        lambda region, python=None: {
            "XGBoostImageUri": f"1.dkr.ecr.{region}.amazonaws.com/sagemaker-xgboost:3.0-5",
            "SKLearnImageUri": f"1.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
        },
    )
    # When a dry run is asked for
    status = deploy.main(["--env", "prod", "--dry-run", "--root", str(tmp_path)])
    # Then it succeeds and shows the parameters, both sam commands and what it would publish
    out = capsys.readouterr().out
    version = code.code_version(ml_dir)
    assert status == 0
    assert f"CodeVersion = {version}" in out
    assert "$ sam build --config-env prod" in out
    overrides = f"--parameter-overrides Environment=prod LogRetentionDays=365 CodeVersion={version}"
    assert f"$ sam deploy --config-env prod {overrides}" in out
    assert f"code/{version}/sourcedir.tar.gz" in out


def test_a_missing_environment_is_bad_input_refused_with_a_message(tmp_path, ml_dir, capsys):
    (tmp_path / "samconfig.toml").write_text((ROOT / "samconfig.toml").read_text())
    assert deploy.main(["--env", "qa", "--dry-run", "--root", str(tmp_path)]) == 2
    assert "no environment 'qa'" in capsys.readouterr().err
