"""The template lints clean: cfn-lint, SAM's own validation with its linter, and checkov's
security checks (skips only with a written reason in the template). The SAM CLI and checkov pin
their own dependencies, so they live in their own environments (`make setup` installs them)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
TIMEOUT = 300  # seconds; each tool takes a few


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", SAM_CLI_TELEMETRY="0")
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def test_cfn_lint_is_clean():
    from cfnlint.api import lint_file

    # When cfn-lint checks the template (errors, warnings and informational findings alike)
    matches = lint_file(ROOT / "template.yaml")
    # Then it reports nothing
    assert [str(m) for m in matches] == []


def test_sam_validate_with_lint_is_clean(setup_tool):
    # When SAM validates and lints the template (offline)
    result = run([str(setup_tool(SAM, "the SAM CLI")), "validate", "--lint", "--template-file", "template.yaml"])
    # Then it is valid
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_checkov_finds_nothing(setup_tool):
    # When checkov scans the template (offline: no guideline download)
    result = run(
        [
            str(setup_tool(CHECKOV, "checkov")),
            "--file",
            "template.yaml",
            "--framework",
            "cloudformation",
            "--skip-download",
            "--compact",
            "--quiet",
        ]
    )
    # Then no check fails
    assert result.returncode == 0, result.stdout + result.stderr
