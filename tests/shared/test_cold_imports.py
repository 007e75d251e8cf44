"""Cold start: what the shared layer loads at import is what every function pays before its first event.

Each test runs a fresh interpreter, as a cold Lambda does."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.process  # each test starts a fresh interpreter

# The layer's modules a function imports; none of them is an idempotent step.
LAYER = "selfheal_shared.handler, selfheal_shared.config, selfheal_shared.events, selfheal_shared.serving_events, " \
        "selfheal_shared.ledger, selfheal_shared.notify, selfheal_shared.runs, selfheal_shared.serving"


def _run(script: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("module", ["yaml", "aws_lambda_powertools.utilities.idempotency"])
def test_the_layer_does_not_load_what_only_some_invocations_use(module) -> None:
    # Given a fresh interpreter, when it imports the layer's modules
    loaded = _run(f"import sys\nimport {LAYER}\nprint({module!r} in sys.modules)")
    # Then PyYAML (YAML configurations) and Powertools' idempotency (idempotent steps) are not loaded yet
    assert loaded == ["False"]


def test_pyyaml_is_loaded_only_by_reading_a_yaml_configuration() -> None:
    # Given a fresh interpreter, when it reads a JSON configuration, then a YAML one
    printed = _run(
        "import sys, json\n"
        "import selfheal_shared.config as config\n"
        "minimal = {'target': 't', 'problem': 'binary', 'metric': {'name': 'auc', 'threshold': 0.7}}\n"
        "config.load_config(json.dumps(minimal), fmt='json')\n"
        "print('yaml' in sys.modules)\n"
        "config.load_config('target: t\\nproblem: binary\\nmetric: {name: auc, threshold: 0.7}\\n')\n"
        "print('yaml' in sys.modules)\n"
    )
    # Then PyYAML was loaded by the YAML one only
    assert printed == ["False", "True"]


def test_an_idempotent_step_loads_powertools_idempotency_when_it_needs_it() -> None:
    # Given a fresh interpreter with the layer, when a persistence layer for an idempotent step is made
    printed = _run(
        "import os, sys\n"
        "os.environ.update(LEDGER_TABLE='ledger', DATA_BUCKET='bucket', NOTIFY_TOPIC_ARN='arn:aws:sns:x', "
        "TRAINING_PIPELINE_ARN='arn:aws:states:x', CODE_VERSION='v1', XGBOOST_IMAGE_URI='image', "
        "KMS_KEY_ARN='arn:aws:kms:x', AWS_DEFAULT_REGION='us-east-1')\n"
        "from selfheal_shared import aws\n"
        "print(type(aws.idempotency_store('step')).__name__)\n"
    )
    # Then it is Powertools' DynamoDB persistence layer, as before
    assert printed == ["DynamoDBPersistenceLayer"]
