"""The template keeps the project's promises: data encrypted with the project's key, private and
TLS-only; the ledger recoverable; names lining up across template, folders, events, tests and ASL;
and the TrainingPipeline's states exactly as docs/architecture.md lists them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from asl_rules import assert_delivered_with_retries_and_a_dead_letter_queue, assert_retried_boundedly
from selfheal_shared.config import Spot

ROOT = Path(__file__).resolve().parents[2]
# botocore StoppingCondition.MaxRuntimeInSeconds: a training job runs at most 30 days in total.
TRAINING_JOB_LIFETIME = 30 * 24 * 3600
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()
PIPELINE_STATES = {
    "Preprocess",
    "MergePreprocess?",
    "MergePreprocess",
    "EncodePreprocess",
    "Train",
    "Evaluate",
    "Gate",
    "GateChoice",
    "Register",
    "ApprovalChoice",
    "Deploy",
    "DeployOutcome",
    "RecordDeployed",
    "RecordRegistered",
    "RecordRejected",
    "RecordFailure",
    "Failed",
}


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def key_ref(value: Any) -> bool:
    return value in ({"Fn::GetAtt": ["Key", "Arn"]}, {"Fn::GetAtt": "Key.Arn"}, {"Ref": "Key"})


def snake(logical_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", logical_id.removesuffix("Function")).lower()


def test_the_data_bucket_is_versioned_encrypted_private_and_tls_only(raw_template):
    # Given the data bucket and its policy
    bucket = raw_template["Resources"]["DataBucket"]["Properties"]
    # Then it is versioned and encrypted with the project's key (bucket keys keep KMS calls down)
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert key_ref(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"])
    assert rule["BucketKeyEnabled"] is True
    # and no public access, bucket-owned objects, EventBridge notifications on
    assert all(bucket["PublicAccessBlockConfiguration"].values()) and len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert bucket["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    # and lifecycle rules for quarantine, artifacts and abandoned multipart uploads
    rules = bucket["LifecycleConfiguration"]["Rules"]
    prefixes = {r.get("Prefix") for r in rules if "ExpirationInDays" in r}
    assert {"quarantine/", "artifacts/"} <= prefixes
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    # and its policy refuses every request not over TLS, on the bucket and its objects
    (policy,) = [
        p["Properties"]
        for p in of_type(raw_template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": "DataBucket"}
    ]
    deny = [
        s
        for s in policy["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
    ]
    assert deny and deny[0]["Action"] == "s3:*" and len(deny[0]["Resource"]) == 2


def test_the_ledger_recovers_encrypts_and_expires_idempotency_records(raw_template):
    # Given the ledger table
    table = raw_template["Resources"]["LedgerTable"]["Properties"]
    # Then its keys are pk/sk strings, billed on demand, recoverable, encrypted with the key, with TTL
    assert {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]} == {"pk": "S", "sk": "S"}
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEType"] == "KMS" and key_ref(table["SSESpecification"]["KMSMasterKeyId"])
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


def test_topic_queues_and_logs_are_encrypted_with_the_key(raw_template):
    # Given every topic, queue and log group
    for name, resource in of_type(raw_template, "AWS::SNS::Topic").items():
        assert key_ref(resource["Properties"]["KmsMasterKeyId"]), name
    for name, resource in of_type(raw_template, "AWS::SQS::Queue").items():
        assert key_ref(resource["Properties"]["KmsMasterKeyId"]), name
    for name, resource in of_type(raw_template, "AWS::Logs::LogGroup").items():
        # Then each uses the key, and logs are kept only as long as configured
        assert key_ref(resource["Properties"]["KmsKeyId"]), name
        assert resource["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    key = raw_template["Resources"]["Key"]["Properties"]
    assert key["EnableKeyRotation"] is True


def test_uploads_reach_ingest_with_retries_and_a_dead_letter_queue(raw_template):
    # Given the upload rule
    rule = raw_template["Resources"]["IngestRule"]["Properties"]
    # Then it matches objects created under incoming/ in the data bucket only
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [{"Ref": "DataBucket"}]}, "object": {"key": [{"prefix": "incoming/"}]}},
    }
    # and delivers to IngestFunction with bounded retries and a dead-letter queue
    assert_delivered_with_retries_and_a_dead_letter_queue(raw_template, "IngestRule", "IngestFunction", "IngestDLQ")


def test_every_function_gets_exactly_the_documented_environment(raw_template):
    # Given the environment table of docs/architecture.md
    section = ARCHITECTURE.split("## Environment every function gets", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.M))
    assert len(documented) >= 9
    # When the template's Globals are read
    variables = raw_template["Globals"]["Function"]["Environment"]["Variables"]
    # Then they are exactly those, plus the Powertools log level, and no function overrides them
    assert set(variables) == documented | {"POWERTOOLS_LOG_LEVEL"}
    for name, function in of_type(raw_template, "AWS::Serverless::Function").items():
        assert "Environment" not in function["Properties"], name


def test_functions_share_the_runtime_layers_and_tracing(raw_template):
    # Given the function Globals and the shared layer
    globals_ = raw_template["Globals"]["Function"]
    layer = raw_template["Resources"]["SharedLayer"]
    # Then every function runs python3.12 on x86_64 with tracing, Powertools pinned, and the shared code
    assert (globals_["Runtime"], globals_["Architectures"], globals_["Tracing"]) == ("python3.12", ["x86_64"], "Active")
    powertools, shared = globals_["Layers"]
    assert "AWSLambdaPowertoolsPythonV3-python312-x86_64:${PowertoolsLayerVersion}" in powertools["Fn::Sub"]
    assert shared == {"Ref": "SharedLayer"}
    assert layer["Properties"]["ContentUri"] == "layers/shared/"
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    assert key_ref(globals_["KmsKeyArn"])


def test_function_folders_and_template_functions_line_up(raw_template):
    # Given the template's functions and the folders under functions/
    functions = of_type(raw_template, "AWS::Serverless::Function")
    folders = {p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    # Then each function's CodeUri is functions/<snake name>/ and each folder has a function
    by_folder = {}
    for name, function in functions.items():
        assert function["Properties"]["CodeUri"] == f"functions/{snake(name)}/", name
        by_folder[snake(name)] = name
    assert set(by_folder) == folders
    for folder, name in by_folder.items():
        # and each has its handler, sample events and tests under the same name
        assert re.search(r"^def lambda_handler\(", (ROOT / "functions" / folder / "app.py").read_text(), re.M), name
        assert list((ROOT / "events" / folder).glob("*.json")), f"events/{folder}/ has no sample events"
        assert (ROOT / "tests" / "functions" / f"test_{folder}.py").exists(), f"tests/functions/test_{folder}.py"
        assert "Handler" not in functions[name]["Properties"], name
    assert raw_template["Globals"]["Function"]["Handler"] == "app.lambda_handler"


def test_every_asl_file_belongs_to_a_state_machine_and_every_reference_exists(state_machines):
    # Given the ASL files and the state machines' DefinitionUris
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "statemachines").glob("*.asl.json")}
    used = {p["DefinitionUri"] for p in state_machines.values()}
    # Then they are the same set, and every machine is Standard, logged and traced
    assert files == used
    for name, properties in state_machines.items():
        assert properties["Type"] == "STANDARD", name
        assert properties["Logging"]["Level"] == "ALL" and properties["Logging"]["IncludeExecutionData"] is True
        assert properties["Tracing"] == {"Enabled": True}


@pytest.fixture(scope="module")
def pipeline(render, policies) -> dict[str, Any]:
    return render(policies, "TrainingPipeline")


def test_the_pipeline_has_exactly_the_documented_states(pipeline):
    # Given the states docs/architecture.md names for TrainingPipeline
    section = ARCHITECTURE.split("## TrainingPipeline states", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"\*\*(\w+\??)\*\*", section))
    # Then the ASL has exactly those
    assert documented == PIPELINE_STATES
    assert set(pipeline["States"]) == PIPELINE_STATES
    assert pipeline["StartAt"] == "Preprocess"
    assert pipeline["States"]["Failed"]["Type"] == "Fail"
    # The execution fails under the pipeline's own error name (a Fail state may not raise a States.* one),
    # with the original error name and cause in the cause.
    assert pipeline["States"]["Failed"]["Error"] == "TrainingPipelineFailed"
    assert pipeline["States"]["Failed"]["CausePath"] == "States.Format('{}: {}', $.error.Error, $.error.Cause)"


def test_every_task_catches_everything_into_record_failure_and_retries_boundedly(pipeline):
    # Given every Task state
    for name, state in pipeline["States"].items():
        if state["Type"] != "Task":
            continue
        # Then any error goes to RecordFailure with the error at $.error (RecordFailure itself
        # ends the execution failed, keeping the original error)
        (catch,) = state["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"], name
        if name == "RecordFailure":
            assert catch["Next"] == "Failed" and catch["ResultPath"] != "$.error"
        else:
            assert (catch["Next"], catch["ResultPath"]) == ("RecordFailure", "$.error"), name
        # and every retry is bounded and backs off, Lambda's transient errors first
        assert_retried_boundedly(name, state)
        if state["Resource"] == "arn:aws:states:::lambda:invoke":
            assert state["Parameters"]["FunctionName"].startswith("arn:aws:lambda:"), name


def test_train_retries_the_job_quota_and_failed_jobs_but_no_refused_request(pipeline):
    # Given the Train state
    retries = pipeline["States"]["Train"]["Retry"]
    # Then the account's job quota is retried first; a refused request (a ValidationException or a throttled
    # call, both SageMaker.AmazonSageMakerException) is not; a failed job (capacity) is, with a new job name
    assert retries[0]["ErrorEquals"] == ["SageMaker.ResourceLimitExceededException"]
    assert "SageMaker.AmazonSageMakerException" in retries[1]["ErrorEquals"] and retries[1]["MaxAttempts"] == 0
    assert retries[-1]["ErrorEquals"] == ["States.TaskFailed"]


def longest_allowed(model: type, field: str) -> int:
    """The largest value a configuration may give `field` (its Field's `le`)."""
    return next(m.le for m in model.model_fields[field].metadata if hasattr(m, "le"))


def test_train_waits_at_least_as_long_as_the_longest_training_a_config_allows(pipeline):
    # Given the longest stopping condition a model's configuration may ask for (28 days, SageMaker's limit)
    longest = max(longest_allowed(Spot, "max_runtime_seconds"), longest_allowed(Spot, "max_wait_seconds"))
    # Then Train's own timeout lets SageMaker stop the job first, and upload what it made: SageMaker bounds a
    # training job's whole life, "including any time spent ... uploading models", to 30 days
    assert pipeline["States"]["Train"]["TimeoutSeconds"] >= TRAINING_JOB_LIFETIME > longest


def test_gate_choice_registers_only_a_passing_challenger(pipeline):
    # Given the GateChoice state
    choice = pipeline["States"]["GateChoice"]
    # Then a passed gate goes to Register and anything else to RecordRejected
    assert choice["Choices"] == [{"Variable": "$.gate.passed", "BooleanEquals": True, "Next": "Register"}]
    assert choice["Default"] == "RecordRejected"


def test_outputs_name_what_an_operator_looks_up(raw_template):
    # Given the template's outputs
    outputs = raw_template["Outputs"]
    # Then the bucket, incoming prefix, table, topic, pipeline, SageMaker role and key are there
    assert {
        "DataBucketName",
        "IncomingUri",
        "LedgerTableName",
        "NotifyTopicArn",
        "TrainingPipelineArn",
        "SageMakerExecutionRoleArn",
        "KeyArn",
    } <= set(outputs)


def test_the_pipeline_arn_the_functions_get_is_the_pipelines_own(policies):
    # Given the ARN in the functions' environment (built from the name, to avoid a dependency cycle)
    environment = policies.resolve(policies.template["Resources"]["IngestFunction"]["Properties"]["Environment"])
    # Then it is the state machine's ARN
    assert environment["Variables"]["TRAINING_PIPELINE_ARN"] == policies.physical("TrainingPipeline")
