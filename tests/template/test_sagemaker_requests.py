"""Every SageMaker task in the ASL sends a request SageMaker accepts: filled from a sample state of its
state machine and validated against botocore's service model, with and without the optional VPC. (The
local cloud's engine calls services with parameter validation off, and AWS would only tell at run time.)"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import botocore.session
import pytest
from asl_rules import all_states
from botocore.validate import ParamValidator
from selfheal_bench.localcloud.sagemaker_jobs import validate_request
from selfheal_shared.config import load_config
from selfheal_shared.instances import job_resources
from selfheal_shared.runs import CODE_CHANNEL_SOURCEDIR, pipeline_input
from selfheal_shared.settings import Settings

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-4000-8000-000000000001"

SAGEMAKER_TASK = re.compile(r"^arn:aws:states:::(?:aws-sdk:)?sagemaker:(\w+?)(\.sync|\.waitForTaskToken)?$")
JOB_NAME_FIELDS = ("ProcessingJobName", "TrainingJobName")
MAX_RETRY_COUNT = 9  # above every MaxAttempts in the ASL, so names are checked at their longest
TASKS = {
    "TrainingPipeline": {"Preprocess", "MergePreprocess", "EncodePreprocess", "Train", "Evaluate"},
    "DeployPipeline": {"CreateModel", "CreateEndpointConfig", "CreateEndpoint", "UpdateEndpoint", "DescribeEndpoint",
                       "ExplainFailure", "RestorePreviousConfig", "DescribeRestoredEndpoint", "DeleteNewEndpoint",
                       "DeleteBrokenEndpoint", "DescribeDeletedEndpoint", "RecreateEndpoint"},
    "MonitorPipeline": {"AnalyzeDrift", "MergeDrift", "AnalyzeQuality"},
}
JOBS = {"Preprocess", "MergePreprocess", "EncodePreprocess", "Train", "Evaluate", "AnalyzeDrift", "MergeDrift",
        "AnalyzeQuality"}
# What runs in a container, network-isolated and in the VPC when one is configured: every job, and the model.
ISOLATED = JOBS | {"CreateModel"}


# Where each job's compute comes from: the run document's "training" section, or the monitoring window.
# MergePreprocess runs on one instance of the processing type: Evaluate's cluster.
TRAINING_DOCUMENTS = {"Preprocess": "processing_cluster", "MergePreprocess": "evaluation_cluster",
                      "EncodePreprocess": "processing_cluster", "Train": "resource_config",
                      "Evaluate": "evaluation_cluster"}
# MergeDrift runs on one instance of the same type: the quality job's cluster.
WINDOW_DOCUMENTS = {"AnalyzeDrift": "cluster", "MergeDrift": "quality_cluster", "AnalyzeQuality": "quality_cluster"}


def job_compute(sent: dict[str, Any]) -> dict[str, Any]:
    return sent.get("ProcessingResources", {}).get("ClusterConfig") or sent["ResourceConfig"]


def job_document(state: dict[str, Any], name: str) -> dict[str, Any]:
    if name in TRAINING_DOCUMENTS:
        return state["training"][TRAINING_DOCUMENTS[name]]
    return state["window"][WINDOW_DOCUMENTS[name]]


def sagemaker_tasks(definition: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    tasks = []
    for name, state in all_states(definition):
        match = SAGEMAKER_TASK.match(state.get("Resource", ""))
        if state["Type"] == "Task" and match:
            operation = match.group(1)[0].upper() + match.group(1)[1:]
            tasks.append((name, operation, state["Parameters"]))
    return tasks


@pytest.fixture(scope="module")
def sagemaker_model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


@pytest.mark.parametrize("machine", sorted(TASKS))
@pytest.mark.parametrize("with_vpc", [False, True], ids=["no-vpc", "vpc"])
def test_every_sagemaker_task_sends_a_valid_request(request, render, fill, sagemaker_model, machine, with_vpc):
    # Given the state machine rendered as CloudFormation would, with or without the VPC parameters
    view = request.getfixturevalue("vpc_policies" if with_vpc else "policies")
    tasks = sagemaker_tasks(render(view, machine))
    assert {name for name, _, _ in tasks} == TASKS[machine]

    for name, operation, parameters in tasks:
        # When the task's parameters are filled from the sample state
        sent = fill(parameters, machine=machine)

        # Then botocore's model of the operation accepts them
        shape = sagemaker_model.operation_model(operation).input_shape
        report = ParamValidator().validate(sent, shape)
        assert not report.has_errors(), f"{name} ({operation}):\n{report.generate_report()}"
        if name not in ISOLATED:
            continue
        # and a container runs network-isolated, in the VPC exactly when one is configured
        network = sent.get("NetworkConfig", sent)
        assert network["EnableNetworkIsolation"] is True
        assert ("VpcConfig" in network) is with_vpc, name
        if with_vpc:
            assert network["VpcConfig"] == {
                "Subnets": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
                "SecurityGroupIds": ["sg-0123abcd"],
            }


@pytest.mark.parametrize("machine", ["TrainingPipeline", "MonitorPipeline"])
def test_job_names_are_unique_per_retry_and_fit_sagemakers_limit(render, fill, policies, machine):
    # Given the longest job prefix the contract allows (40 characters)
    for name, _, parameters in sagemaker_tasks(render(policies, machine)):
        field = next(f for f in JOB_NAME_FIELDS if f in parameters or f + ".$" in parameters)
        # When the task runs first and after retries
        names = [fill(parameters, retry_count=n, machine=machine)[field] for n in range(MAX_RETRY_COUNT + 1)]
        # Then every attempt gets its own name, within 63 characters
        assert len(set(names)) == len(names), name
        assert all(len(n) <= 63 for n in names), max(names, key=len)


@pytest.mark.parametrize(("machine", "tags"), [
    ("TrainingPipeline", {"selfheal:model": "churn", "selfheal:run": "churn-upload-1a2b3c4d5e6f"}),
    ("MonitorPipeline", {"selfheal:model": "churn", "selfheal:monitor": "monitor-churn-0123456789ab"}),
])
def test_jobs_run_on_the_documents_compute_and_encrypt_outputs_with_the_projects_key(render, fill, policies, samples,
                                                                                       machine, tags):
    # Given the rendered pipeline
    key_arn = policies.physical("Key", "Arn")
    state, _ = samples[machine]
    for name, _, parameters in sagemaker_tasks(render(policies, machine)):
        # When its requests are filled
        sent = fill(parameters, machine=machine)
        # Then the job runs on the compute the run (or the monitoring window) document gives, volume key included
        assert job_compute(sent) == job_document(state, name), name
        # and outputs use the project's key
        outputs = sent.get("ProcessingOutputConfig") or sent["OutputDataConfig"]
        assert outputs["KmsKeyId"] == key_arn, name
        # and the job is tagged with its model and run (or monitoring execution)
        assert {t["Key"]: t["Value"] for t in sent["Tags"]} == tags, name


@pytest.mark.parametrize("instance_type", ["ml.m5d.xlarge", "ml.c5d.2xlarge", "ml.g4dn.xlarge", "ml.g5.2xlarge"])
@pytest.mark.parametrize("machine", ["TrainingPipeline", "MonitorPipeline"])
def test_jobs_on_instance_types_with_local_storage_send_what_sagemaker_accepts(render, fill, policies, samples,
                                                                              machine, instance_type):
    # Given a configuration asking for an instance type with local NVMe storage, and the documents the
    # functions build for it
    state = copy.deepcopy(samples[machine][0])
    state["training"] = state.get("training", {}) | {
        "instance_type": instance_type, "processing_instance_type": instance_type,
        **{document: job_resources(instance_type, KEY_ARN) for document in TRAINING_DOCUMENTS.values()}}
    state["window"] = state.get("window", {}) | {
        "instance_type": instance_type,
        **{document: job_resources(instance_type, KEY_ARN) for document in WINDOW_DOCUMENTS.values()}}
    for name, operation, parameters in sagemaker_tasks(render(policies, machine)):
        # When each job's request is filled; Then SageMaker (the local cloud's, as strict) accepts it:
        # no volume key for an instance that encrypts its own storage
        sent = fill(parameters, state=state, machine=machine)
        validate_request(operation, sent)
        resources = job_compute(sent)
        assert resources["InstanceType"] == instance_type and "VolumeKmsKeyId" not in resources, name


def test_a_configuration_of_two_instances_sends_instance_count_two_to_the_jobs_that_split_their_work(
        render, fill, policies, samples):
    # Given a model configured for 2 instances for training, preprocessing and monitoring, and the documents
    # the functions build from it (runs.pipeline_input, monitor_window.prepare_monitor)
    config = load_config({"target": "churned", "problem": "binary", "metric": {"name": "auc", "threshold": 0.75},
                          "training": {"instance_count": 2, "processing_instance_count": 2},
                          "monitor": {"instance_count": 2}})
    settings = Settings.from_environ({
        "LEDGER_TABLE": "ledger", "DATA_BUCKET": "selfheal-databucket", "KMS_KEY_ARN": KEY_ARN,
        "NOTIFY_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:notify", "CODE_VERSION": "0123456789abcdef",
        "TRAINING_PIPELINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:training",
        "XGBOOST_IMAGE_URI": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:3.0-5"})
    training = pipeline_input(settings, model="churn", run_id="churn-upload-1a2b3c4d5e6f", trigger="upload",
                              cause_id="c", config=config, champion=None)["training"]
    expected = {"Preprocess": 2, "MergePreprocess": 1, "EncodePreprocess": 2, "Train": 2, "Evaluate": 1,
                "AnalyzeDrift": 2, "MergeDrift": 1, "AnalyzeQuality": 1}
    for machine in ("TrainingPipeline", "MonitorPipeline"):
        state = copy.deepcopy(samples[machine][0])
        state["training"] = training
        state["window"] = state.get("window", {}) | {
            "cluster": job_resources("ml.m5.large", KEY_ARN, config.monitor.instance_count),
            "quality_cluster": job_resources("ml.m5.large", KEY_ARN)}
        for name, operation, parameters in sagemaker_tasks(render(policies, machine)):
            # When each job's request is filled
            sent = fill(parameters, state=state, machine=machine)
            # Then SageMaker (the local cloud's, as strict as botocore's model) accepts it, with InstanceCount 2
            # for the jobs that split their work: Preprocess, Train and the drift analysis
            validate_request(operation, sent)
            assert job_compute(sent)["InstanceCount"] == expected[name], name


def test_each_training_instance_gets_its_shard_of_the_train_split_and_all_of_the_rest(render, fill, policies):
    # Given the Train task
    sent = fill(render(policies, "TrainingPipeline")["States"]["Train"]["Parameters"])
    # Then the train channel is dealt out by S3 key (one file per instance, which Preprocess writes), and every
    # other channel is copied whole to every instance
    distribution = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
                    for c in sent["InputDataConfig"]}
    assert distribution == {"train": "ShardedByS3Key", "validation": "FullyReplicated",
                            "transform": "FullyReplicated", "code": "FullyReplicated"}


def test_train_reads_the_script_from_a_channel_because_the_container_has_no_network(render, fill, policies):
    # Given the Train task
    train = render(policies, "TrainingPipeline")["States"]["Train"]
    # When it is filled
    sent = fill(train["Parameters"])
    # Then the code arrives as the `code` channel, which SageMaker puts at /opt/ml/input/data/code/<key's name>:
    # exactly the file the run's sagemaker_submit_directory names (runs.training_hyperparameters)
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in sent["InputDataConfig"]}
    assert set(channels) == {"train", "validation", "transform", "code"}
    assert f"/opt/ml/input/data/code/{channels['code'].rsplit('/', 1)[1]}" == CODE_CHANNEL_SOURCEDIR
    assert json.loads(sent["HyperParameters"]["sagemaker_submit_directory"]) == CODE_CHANNEL_SOURCEDIR
    assert sent["EnableNetworkIsolation"] is True


def test_the_endpoint_captures_its_traffic_encrypted_where_the_monitor_reads_it(render, fill, policies):
    # Given the endpoint config DeployPipeline creates
    sent = fill(render(policies, "DeployPipeline")["States"]["CreateEndpointConfig"]["Parameters"],
                machine="DeployPipeline")
    # Then its one variant serves the new model, and capture of requests and responses goes to capture/<model>/
    (variant,) = sent["ProductionVariants"]
    assert variant["ModelName"] == sent["EndpointConfigName"]
    capture = sent["DataCaptureConfig"]
    assert capture["EnableCapture"] and capture["DestinationS3Uri"].endswith("/capture/churn")
    assert {o["CaptureMode"] for o in capture["CaptureOptions"]} == {"Input", "Output"}
    assert capture["CaptureContentTypeHeader"] == {"CsvContentTypes": ["text/csv"],
                                                   "JsonContentTypes": ["application/json"]}
    assert capture["KmsKeyId"] == policies.physical("Key", "Arn")


def monitor_task(render, policies, name: str) -> dict[str, Any]:
    return next(state for found, state in all_states(render(policies, "MonitorPipeline")) if found == name)


def test_the_monitor_job_analyses_the_window_with_the_staged_baseline(render, fill, policies):
    # Given the AnalyzeDrift task
    sent = fill(monitor_task(render, policies, "AnalyzeDrift")["Parameters"], machine="MonitorPipeline")
    # Then monitor.py runs over the window, on the capture manifest, against the staged baseline
    app = sent["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/monitor.py"]
    assert app["ContainerArguments"] == ["--start-time", "2026-01-01T00:00:00.000000Z",
                                         "--end-time", "2026-01-01T01:00:00.000000Z"]
    inputs = {i["InputName"]: i["S3Input"] for i in sent["ProcessingInputs"]}
    assert inputs["capture"]["S3DataType"] == "ManifestFile"
    assert inputs["capture"]["LocalPath"] == "/opt/ml/processing/input/capture"
    assert inputs["baseline"]["LocalPath"] == "/opt/ml/processing/input/baseline"
    outputs = {o["OutputName"]: o["S3Output"] for o in sent["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["report"]["LocalPath"] == "/opt/ml/processing/output/report"
    assert outputs["report"]["S3Uri"].endswith("/report")
    # and on several instances each host reads its share of the capture files and writes its share of the window
    assert inputs["capture"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert inputs["baseline"]["S3DataDistributionType"] == "FullyReplicated"
    assert outputs["partials"]["LocalPath"] == "/opt/ml/processing/output/partials"
    assert outputs["partials"]["S3Uri"] == outputs["report"]["S3Uri"] + "/partials"


def test_the_merge_job_reads_every_hosts_share_and_writes_the_report_on_one_instance(render, fill, policies):
    # Given AnalyzeDrift and the MergeDrift task after it
    drift = fill(monitor_task(render, policies, "AnalyzeDrift")["Parameters"], machine="MonitorPipeline")
    sent = fill(monitor_task(render, policies, "MergeDrift")["Parameters"], machine="MonitorPipeline")
    # Then monitor.py --merge reads the prefix every host's share went to, and writes the report where the
    # single-host analysis writes it, over the same window
    app = sent["AppSpecification"]
    assert app["ContainerArguments"] == ["--merge", *drift["AppSpecification"]["ContainerArguments"]]
    shares = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in drift["ProcessingOutputConfig"]["Outputs"]}
    inputs = {i["InputName"]: i["S3Input"] for i in sent["ProcessingInputs"]}
    assert inputs["partials"]["S3Uri"] == shares["partials"] + "/"
    assert inputs["partials"]["LocalPath"] == "/opt/ml/processing/input/partials"
    assert inputs["baseline"] == {i["InputName"]: i["S3Input"] for i in drift["ProcessingInputs"]}["baseline"]
    (report,) = sent["ProcessingOutputConfig"]["Outputs"]
    assert report["S3Output"]["S3Uri"] == shares["report"]
    assert sent["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1


def test_the_merge_runs_only_when_several_hosts_analysed_the_window(render, policies):
    # Given the drift branch of MonitorPipeline
    states = dict(all_states(render(policies, "MonitorPipeline")))
    # Then AnalyzeDrift keeps the window for the merge, and the merge runs only for more than one instance
    assert states["AnalyzeDrift"]["ResultPath"] == "$.drift_job" and states["AnalyzeDrift"]["Next"] == "Merge?"
    assert states["Merge?"]["Choices"] == [
        {"Variable": "$.window.cluster.InstanceCount", "NumericGreaterThan": 1, "Next": "MergeDrift"}]
    assert states["Merge?"]["Default"] == "DriftAnalysed"


def test_preprocess_deals_out_the_datasets_merges_on_one_instance_and_encodes_on_every_one(render, fill, policies):
    # Given Preprocess, and the MergePreprocess and EncodePreprocess tasks after it
    states = dict(all_states(render(policies, "TrainingPipeline")))
    prep, sent, encode = (fill(states[name]["Parameters"], machine="TrainingPipeline")
                          for name in ("Preprocess", "MergePreprocess", "EncodePreprocess"))
    # Then each Preprocess host gets a share of the datasets and writes its summary where the merge reads them all
    prep_inputs = {i["InputName"]: i["S3Input"] for i in prep["ProcessingInputs"]}
    assert prep_inputs["data"]["S3DataDistributionType"] == "ShardedByS3Key"
    prep_outputs = {o["OutputName"]: o["S3Output"] for o in prep["ProcessingOutputConfig"]["Outputs"]}
    inputs = {i["InputName"]: i["S3Input"] for i in sent["ProcessingInputs"]}
    assert inputs["partials"]["S3Uri"] == prep_outputs["partials"]["S3Uri"] + "/"
    assert inputs["partials"]["S3DataDistributionType"] == "FullyReplicated"
    assert inputs["config"] == prep_inputs["config"] and "data" not in inputs
    # And preprocess.py --merge writes, on one instance, what Evaluate and the monitor read, and the encoding's plan
    assert sent["AppSpecification"]["ContainerArguments"] == ["--merge"]
    outputs = {o["OutputName"]: o["S3Output"] for o in sent["ProcessingOutputConfig"]["Outputs"]}
    assert {name: outputs[name] for name in ("test", "transform", "baseline")} == {
        name: prep_outputs[name] for name in ("test", "transform", "baseline")}
    assert sorted(outputs) == ["baseline", "plan", "test", "transform"]
    assert sent["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 1
    assert sent["ProcessingJobName"].endswith("-prep-merge-0") and len(sent["ProcessingJobName"]) <= 63
    # And preprocess.py --encode, on Preprocess's instances, each dealt a share of the hosts' rows files, reads the
    # plan and the transform and writes what Train reads
    assert encode["AppSpecification"]["ContainerArguments"] == ["--encode"]
    assert encode["ProcessingResources"]["ClusterConfig"] == prep["ProcessingResources"]["ClusterConfig"]
    encode_inputs = {i["InputName"]: i["S3Input"] for i in encode["ProcessingInputs"]}
    assert encode_inputs["rows"]["S3Uri"] == prep_outputs["partials"]["S3Uri"] + "/rows/"
    assert encode_inputs["rows"]["S3DataDistributionType"] == "ShardedByS3Key"
    for name in ("plan", "transform"):
        assert encode_inputs[name]["S3Uri"] == outputs[name]["S3Uri"] + "/"
        assert encode_inputs[name]["S3DataDistributionType"] == "FullyReplicated"
    encode_outputs = {o["OutputName"]: o["S3Output"] for o in encode["ProcessingOutputConfig"]["Outputs"]}
    assert encode_outputs == {name: prep_outputs[name] for name in ("train", "validation")}
    assert encode["ProcessingJobName"].endswith("-prep-encode-0") and len(encode["ProcessingJobName"]) <= 63
    # And the merge and the encoding run only for more than one instance, then Train
    assert states["Preprocess"]["Next"] == "MergePreprocess?"
    assert states["MergePreprocess?"]["Choices"] == [
        {"Variable": "$.training.processing_cluster.InstanceCount", "NumericGreaterThan": 1,
         "Next": "MergePreprocess"}]
    assert states["MergePreprocess?"]["Default"] == "Train"
    assert (states["MergePreprocess"]["Next"], states["EncodePreprocess"]["Next"]) == ("EncodePreprocess", "Train")


def test_the_quality_job_judges_the_serving_models_predictions_by_their_labels(render, fill, policies):
    # Given the AnalyzeQuality task
    sent = fill(monitor_task(render, policies, "AnalyzeQuality")["Parameters"], machine="MonitorPipeline")
    # Then quality.py judges the quality window on the configured metric, from the capture and ground truth
    app = sent["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["python3", "/opt/ml/processing/input/code/quality.py"]
    assert app["ContainerArguments"] == ["--metric", "auc", "--threshold", "0.75",
                                         "--start-time", "2025-12-31T00:00:00.000000Z",
                                         "--end-time", "2026-01-01T01:00:00.000000Z", "--label-delay-hours", "24.0"]
    inputs = {i["InputName"]: i["S3Input"] for i in sent["ProcessingInputs"]}
    assert {name: (i["S3DataType"], i["LocalPath"]) for name, i in inputs.items()} == {
        "code": ("S3Prefix", "/opt/ml/processing/input/code"),
        "quality": ("S3Prefix", "/opt/ml/processing/input/quality"),
        "capture": ("ManifestFile", "/opt/ml/processing/input/capture"),
        "ground_truth": ("ManifestFile", "/opt/ml/processing/input/ground_truth")}
    outputs = {o["OutputName"]: o["S3Output"] for o in sent["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["quality"]["S3Uri"].endswith("/quality") and outputs["labelled"]["S3Uri"].endswith("/labelled")
    assert sent["ProcessingJobName"].endswith("-mq-0") and len(sent["ProcessingJobName"]) <= 63
