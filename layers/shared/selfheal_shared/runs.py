"""Starting a run: the one way TrainingPipeline starts (docs/architecture.md, "Starting a run").

`maybe_start_run` is safe to call again with the same arguments (a duplicate event, a retried
invocation, a crash half-way): the run id is derived from them, and every step is idempotent for
that run id, so a repeat resumes the same run and never starts a second one."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from selfheal_shared import aws, ledger
from selfheal_shared.config import ModelConfig, Window, read_model_config
from selfheal_shared.errors import ConfigError, ConfigNotFound
from selfheal_shared.instances import job_resources
from selfheal_shared.ledger_items import ChampionItem, DatasetItem, RunItem
from selfheal_shared.names import job_prefix_for, run_id_for
from selfheal_shared.s3uri import S3Uri, s3_uri
from selfheal_shared.settings import Settings, get_settings

# Train runs network-isolated, so its container cannot fetch code from S3: the code arrives as Train's `code`
# channel, and script mode reads it there (the SageMaker Python SDK does the same under network isolation:
# estimator.py, Framework.CONTAINER_CODE_CHANNEL_SOURCEDIR_PATH; job.py adds the `code` channel).
CODE_CHANNEL_SOURCEDIR = "/opt/ml/input/data/code/sourcedir.tar.gz"
# Beyond the training budget, time for Preprocess, Evaluate, Register and (later) Deploy.
LOCK_MARGIN_SECONDS = 4 * 3600
LABELLED_TRAFFIC = "labelled_traffic"  # a dataset's source when it is captured requests joined with their labels
_ENDED = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


@dataclass(frozen=True)
class StartDecision:
    model: str
    trigger: str
    started: bool
    reason: str
    run_id: str | None = None
    execution_arn: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def maybe_start_run(model: str, trigger: str, cause_id: str) -> StartDecision:
    """Start TrainingPipeline for `model` if its trigger policy says so and no run is in flight."""
    run_id = run_id_for(model, trigger, cause_id)
    existing = ledger.get_run(model, run_id)
    if existing is not None:
        return _resume(existing, trigger)

    def no_run(reason: str) -> StartDecision:
        return StartDecision(model, trigger, started=False, reason=reason)

    try:
        config = read_model_config(model)
    except (ConfigNotFound, ConfigError) as error:
        return no_run(f"no run: {error}")
    go, reason = trigger_policy(config, trigger, ledger.unconsumed_datasets(model))
    if not go:
        return no_run(reason)
    ttl = lock_seconds(config)
    if not _take_lock(model, run_id, ttl):
        holder = ledger.get_lock(model) or {}
        return no_run(f"run {holder.get('run_id', '?')} is in flight; new datasets wait for it to end")

    # Under the lock nobody else consumes datasets: decide again on what is pending now.
    pending = ledger.unconsumed_datasets(model)
    go, reason = trigger_policy(config, trigger, pending)
    datasets = training_window(ledger.list_datasets(model), window_for(config, trigger))
    if not go or not datasets:
        ledger.release_lock(model, run_id)
        return no_run(reason if not go else "no datasets to train on")

    settings = get_settings()
    champion = _champion_reference(ledger.get_champion(model))
    execution_input = pipeline_input(settings, model=model, run_id=run_id, trigger=trigger, cause_id=cause_id,
                                     config=config, champion=champion)
    _write_inputs(settings, execution_input, datasets)
    input_json = json.dumps(execution_input, sort_keys=True)
    run, _ = ledger.put_run(
        model, run_id, trigger=trigger, cause_id=cause_id, status=ledger.RUNNING, reason=reason,
        datasets=[d["s3_uri"] for d in datasets], consumes=[d["sk"] for d in pending],
        code_version=settings.code_version, artifacts_uri=execution_input["artifacts_uri"],
        job_prefix=execution_input["job_prefix"], execution_arn=execution_arn(settings, run_id),
        execution_input=input_json, lock_seconds=ttl, started_at=ledger.timestamp(),
    )
    return _consume_and_start(run, trigger)


def trigger_policy(config: ModelConfig, trigger: str, pending: list[DatasetItem]) -> tuple[bool, str]:
    """Uploads start a run by the config's trigger policy; other triggers (drift, quality) always may."""
    if trigger != "upload":
        return True, f"{trigger} trigger"
    if not pending:
        return False, "no new datasets since the last run"
    if config.trigger.mode == "min_new_rows":
        rows = sum(int(d.get("rows", 0)) for d in pending)
        if rows < config.trigger.min_new_rows:
            return False, (f"{rows} new rows in {len(pending)} dataset(s), fewer than min_new_rows "
                           f"{config.trigger.min_new_rows}: recorded, no run yet")
        return True, f"{rows} new rows reached min_new_rows {config.trigger.min_new_rows}"
    return True, f"{len(pending)} new dataset(s)"


def window_for(config: ModelConfig, trigger: str) -> Window:
    """Retrains the monitor starts (drift, quality) use retrain.window when it is set."""
    if trigger in {"drift", "quality"} and config.retrain.window is not None:
        return config.retrain.window
    return config.training.window


def training_window(datasets: list[DatasetItem], window: Window) -> list[DatasetItem]:
    """Datasets (oldest first) the run trains on. Labelled traffic is a dataset like any other (the newest,
    when a quality retrain records it); of two from the same serving model, the newer holds every row of
    the older (both join that model's predictions since it was deployed), so only the newer counts."""
    ordered = sorted(_not_superseded(datasets), key=lambda d: d["sk"])
    if window.mode == "latest":
        return ordered[-1:]
    if window.mode == "last_n":
        return ordered[-(window.last_n or 1):]
    return ordered


def _not_superseded(datasets: list[DatasetItem]) -> list[DatasetItem]:
    newest: dict[str, str] = {}
    for dataset in datasets:
        if dataset.get("source") == LABELLED_TRAFFIC:
            package = dataset.get("model_package_arn", "")
            newest[package] = max(newest.get(package, ""), dataset["sk"])
    return [d for d in datasets
            if d.get("source") != LABELLED_TRAFFIC or d["sk"] == newest[d.get("model_package_arn", "")]]


def holdout_keys(bucket: str, datasets: list[DatasetItem]) -> list[str]:
    """The labelled traffic among a run's datasets, as paths in its manifest: Preprocess takes the newest of
    their rows as the test split, so the challenger and the champion are judged on what matters now."""
    return [S3Uri.parse(d["s3_uri"]).key for d in datasets
            if d.get("source") == LABELLED_TRAFFIC and S3Uri.parse(d["s3_uri"]).bucket == bucket]


def lock_seconds(config: ModelConfig) -> int:
    spot = config.training.spot
    return (spot.max_wait_seconds if spot.enabled else spot.max_runtime_seconds) + LOCK_MARGIN_SECONDS


def execution_arn(settings: Settings, run_id: str) -> str:
    """arn:...:stateMachine:<name> -> arn:...:execution:<name>:<run_id>."""
    head, _, name = settings.training_pipeline_arn.rpartition(":stateMachine:")
    return f"{head}:execution:{name}:{run_id}"


def training_hyperparameters(settings: Settings, config: ModelConfig) -> dict[str, str]:
    """Script-mode hyperparameters, every value JSON-encoded as the SageMaker Python SDK does."""
    region = settings.training_pipeline_arn.split(":")[3]
    values: dict[str, Any] = {
        "sagemaker_program": "train.py",
        "sagemaker_submit_directory": CODE_CHANNEL_SOURCEDIR,
        "sagemaker_region": region,
        "target": config.target,
        "problem": config.problem,
        **config.hyperparameters,
    }
    return {name: json.dumps(value) for name, value in values.items()}


def stopping_condition(config: ModelConfig) -> dict[str, int]:
    spot = config.training.spot
    condition = {"MaxRuntimeInSeconds": spot.max_runtime_seconds}
    if spot.enabled:
        condition["MaxWaitTimeInSeconds"] = spot.max_wait_seconds
    return condition


def pipeline_input(
    settings: Settings,
    *,
    model: str,
    run_id: str,
    trigger: str,
    cause_id: str,
    config: ModelConfig,
    champion: dict[str, Any] | None,
) -> dict[str, Any]:
    """TrainingPipeline's execution input (docs/architecture.md)."""
    bucket = settings.data_bucket
    training, key = config.training, settings.kms_key_arn
    return {
        "run_id": run_id,
        "model": model,
        "trigger": trigger,
        "bucket": bucket,
        "code_uri": s3_uri(bucket, "code", settings.code_version),
        "artifacts_uri": s3_uri(bucket, "artifacts", model, run_id),
        "job_prefix": job_prefix_for(model, cause_id),
        "config": config.as_json(),
        "training": {
            "hyperparameters": training_hyperparameters(settings, config),
            "spot": config.training.spot.enabled,
            "stopping_condition": stopping_condition(config),
            "instance_type": config.training.instance_type,
            "processing_instance_type": config.training.processing_instance_type,
            "resource_config": job_resources(training.instance_type, key, training.instance_count),
            "processing_cluster": job_resources(training.processing_instance_type, key,
                                                training.processing_instance_count),
            "evaluation_cluster": job_resources(training.processing_instance_type, key),
        },
        "champion": champion,
    }


def manifest(bucket: str, datasets: list[DatasetItem]) -> list[Any]:
    """SageMaker's ManifestFile format: a common prefix, then keys relative to it."""
    keys = []
    for dataset in datasets:
        uri = S3Uri.parse(dataset["s3_uri"])
        if uri.bucket != bucket:
            raise ValueError(f"dataset {dataset['s3_uri']} is outside the data bucket {bucket}")
        keys.append(uri.key)
    return [{"prefix": f"s3://{bucket}/"}, *keys]


def _champion_reference(item: ChampionItem | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {"model_package_arn": item["model_package_arn"], "run_id": item["run_id"],
            "model_data_url": item["model_data_url"]}


def _write_inputs(settings: Settings, execution_input: dict[str, Any], datasets: list[DatasetItem]) -> None:
    artifacts = S3Uri.parse(execution_input["artifacts_uri"])
    champion = execution_input["champion"]
    # config.json also names the run's labelled traffic (holdout_datasets): a key no model config has.
    files = {
        "input/config.json": {**execution_input["config"],
                              "holdout_datasets": holdout_keys(settings.data_bucket, datasets)},
        "input/datasets.manifest": manifest(settings.data_bucket, datasets),
        "champion/champion.json": champion,
    }
    for name, document in files.items():
        aws.client("s3").put_object(Bucket=artifacts.bucket, Key=artifacts.join(name).key,
                            Body=json.dumps(document, indent=1).encode("utf-8"), ContentType="application/json")
    if champion is not None:
        source = S3Uri.parse(champion["model_data_url"])
        aws.client("s3").copy({"Bucket": source.bucket, "Key": source.key}, artifacts.bucket,
                      artifacts.join("champion", "model.tar.gz").key)


def _take_lock(model: str, run_id: str, ttl_seconds: int) -> bool:
    if ledger.acquire_lock(model, run_id, ttl_seconds=ttl_seconds):
        return True
    holder = ledger.get_lock(model)
    # A holder whose execution ended without recording (stopped by hand, timed out) frees the lock.
    if holder and _execution_ended(holder["run_id"]):
        return ledger.acquire_lock(model, run_id, ttl_seconds=ttl_seconds, steal_from=holder["run_id"])
    return False


def _execution_ended(run_id: str) -> bool:
    try:
        arn = execution_arn(get_settings(), run_id)
        status = aws.client("stepfunctions").describe_execution(executionArn=arn)["status"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False  # may be about to start: only expiry frees such a lock
        raise
    return status in _ENDED


def _resume(run: RunItem, trigger: str) -> StartDecision:
    """A repeat of a call that created this run: finish what it may not have done."""
    model, run_id = run["model"], run["run_id"]
    if run.get("status") != ledger.RUNNING:
        return StartDecision(model, trigger, started=False, run_id=run_id,
                             reason=f"run {run_id} already ended ({run.get('status')})")
    if not ledger.acquire_lock(model, run_id, ttl_seconds=int(run["lock_seconds"])):
        return StartDecision(model, trigger, started=False, run_id=run_id,
                             reason=f"run {run_id} lost its lock to another run")
    return _consume_and_start(run, trigger)


def _consume_and_start(run: RunItem, trigger: str) -> StartDecision:
    model, run_id = run["model"], run["run_id"]
    ledger.mark_consumed(model, run["consumes"], run_id)
    settings = get_settings()
    try:
        arn = aws.client("stepfunctions").start_execution(
            stateMachineArn=settings.training_pipeline_arn, name=run_id, input=run["execution_input"]
        )["executionArn"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        return StartDecision(model, trigger, started=True, run_id=run_id, execution_arn=run["execution_arn"],
                             reason=f"{run['reason']}; already started")
    return StartDecision(model, trigger, started=True, run_id=run_id, execution_arn=arn, reason=run["reason"])
