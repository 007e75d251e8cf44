"""PrepareMonitor: which captured traffic one MonitorPipeline execution analyses, against which baseline.

The window runs from where the last analysed window ended (or from the deployment of the serving
model, if later: older traffic was another model's) to now, at most MAX_WINDOW long. Capture files
sit in hour folders, <capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/ (SageMaker's layout); every file
whose hour overlaps the window, plus the hour before it (SageMaker buffers captures before writing
them), goes into a SageMaker ManifestFile, and ml/monitor.py keeps only the records whose
inferenceTime falls in the window. The serving model's baseline is copied beside the report with the
config's drift threshold, so the job compares exactly as the model's configuration says.

The quality window is the serving model's newest predictions (since its deployment, at most
monitor.quality_window_hours) with every label that has arrived for them: ground-truth files in hour
folders from the window's start to now. Its capture and ground-truth files go into manifests of their
own, and the serving model's quality_baseline.json (written by its Evaluate job) is copied beside the
report. With no labels yet, the job still estimates the metric from the model's own scores: an empty
placeholder file stands in for the labels (a manifest must list at least one object)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from selfheal_shared import aws, ledger
from selfheal_shared.config import ModelConfig, read_model_config
from selfheal_shared.errors import BaselineNotFound
from selfheal_shared.instances import job_resources
from selfheal_shared.names import job_prefix_for
from selfheal_shared.runs import manifest
from selfheal_shared.s3uri import S3Uri, s3_uri
from selfheal_shared.serving import VARIANT
from selfheal_shared.serving_events import MonitorRequest, MonitorWindow, QualityWindow
from selfheal_shared.settings import get_settings

MAX_WINDOW = timedelta(days=7)
MAX_BASELINE_BYTES = 64 * 1024 * 1024  # statistics.json and constraints.json: a few MB for hundreds of features
CAPTURE_DELAY = timedelta(hours=1)
BASELINE_FILES = ("statistics.json", "constraints.json")
QUALITY_BASELINE = "quality_baseline.json"
NO_LABELS = "no-labels-yet.jsonl"


def prepare_monitor(request: MonitorRequest, now: datetime | None = None) -> dict[str, Any]:
    settings = get_settings()
    end = now or datetime.now(UTC)
    endpoint = ledger.get_endpoint(request.model)
    if not endpoint or not endpoint.get("model_package_arn"):
        return no_data(end, "no model serves: nothing to monitor")
    config = read_model_config(request.model)
    work = S3Uri(settings.data_bucket, f"monitoring/{request.model}/{request.execution}")
    capture = S3Uri(settings.data_bucket, f"capture/{request.model}/{endpoint['endpoint_name']}/{VARIANT}")
    quality = quality_window(request.model, endpoint, config, capture, work, end)
    start = window_start(request.model, endpoint, end)
    files = capture_files(capture, start, end)
    jobs = {"code_uri": s3_uri(settings.data_bucket, "code", settings.code_version),
            "job_prefix": job_prefix_for(request.model, request.execution),
            "instance_type": config.training.processing_instance_type,
            "cluster": job_resources(config.training.processing_instance_type, settings.kms_key_arn,
                                     config.monitor.instance_count),
            "quality_cluster": job_resources(config.training.processing_instance_type, settings.kms_key_arn)}
    if start >= end:  # the last window (or the deployment) ends now: the drift job refuses an empty window
        return no_data(end, f"an empty window: nothing since {iso(start)} to analyse", endpoint, start,
                       quality, **(jobs if quality.has_data else {}))
    if not files:
        return no_data(end, f"no captured traffic between {iso(start)} and {iso(end)}", endpoint, start,
                       quality, **(jobs if quality.has_data else {}))
    baseline = copy_baseline(endpoint["baseline_uri"], work.join("baseline"), config.monitor.drift_threshold)
    manifest_uri = put_manifest(work.join("input", "capture.manifest"), files)
    return MonitorWindow(
        has_data=True, reason=f"{len(files)} capture file(s) to analyse", endpoint_name=endpoint["endpoint_name"],
        start=iso(start), end=iso(end), files=len(files), baseline_uri=str(baseline),
        manifest_uri=str(manifest_uri), report_uri=str(work.join("report")), quality=quality, **jobs,
    ).model_dump()


def no_data(end: datetime, reason: str, endpoint: dict[str, Any] | None = None, start: datetime | None = None,
            quality: QualityWindow | None = None, **jobs: Any) -> dict[str, Any]:
    """No drift analysis; the quality window may still have predictions to judge (labels arrive later)."""
    return MonitorWindow(has_data=False, reason=reason, endpoint_name=endpoint and endpoint["endpoint_name"],
                         start=start and iso(start), end=iso(end), files=0, baseline_uri=None, manifest_uri=None,
                         report_uri=None, code_uri=jobs.get("code_uri"), job_prefix=jobs.get("job_prefix"),
                         instance_type=jobs.get("instance_type"), cluster=jobs.get("cluster"),
                         quality_cluster=jobs.get("quality_cluster"),
                         quality=quality or no_quality(reason)).model_dump()


def no_quality(reason: str, **known: Any) -> QualityWindow:
    return QualityWindow(**{"has_data": False, "reason": reason, "start": None, "end": None,
                            "label_delay_hours": 0.0, "metric": "", "threshold": 0.0, "files": 0, "label_files": 0,
                            "model_package_arn": None, "baseline_uri": None, "capture_manifest_uri": None,
                            "labels_manifest_uri": None, "report_uri": None, "labelled_uri": None, **known})


def quality_window(model: str, endpoint: dict[str, Any], config: ModelConfig, capture: S3Uri, work: S3Uri,
                   end: datetime) -> QualityWindow:
    """The serving model's newest predictions, the labels that arrived for them, and its quality baseline."""
    monitor = config.monitor
    start = min(max(parse(endpoint["deployed_at"]), end - timedelta(hours=monitor.quality_window_hours)), end)
    known = {"start": iso(start), "end": iso(end), "label_delay_hours": monitor.label_delay_hours,
             "metric": config.metric.name, "threshold": config.metric.threshold,
             "model_package_arn": endpoint["model_package_arn"]}
    files = capture_files(capture, start, end)
    if not files:
        return no_quality(f"no predictions captured since {iso(start)}", **known)
    run = ledger.get_run(model, endpoint.get("run_id") or "") or {}
    if not run.get("artifacts_uri"):
        return no_quality("the serving model's run is not in the ledger: no quality baseline", **known)
    source = S3Uri.parse(run["artifacts_uri"]).join("evaluation", QUALITY_BASELINE)
    baseline = work.join("quality-baseline")
    try:
        aws.client("s3").copy_object(Bucket=baseline.bucket, Key=baseline.join(QUALITY_BASELINE).key,
                             CopySource={"Bucket": source.bucket, "Key": source.key})
    except ClientError as error:
        if not aws.is_missing(error):
            raise
        return no_quality(f"the serving model has no {QUALITY_BASELINE} (trained before quality monitoring)",
                          **known)
    labels = label_files(S3Uri(capture.bucket, f"ground-truth/{model}"), start, end)
    if not labels:  # the job still estimates; a manifest must name at least one object
        placeholder = work.join("input", NO_LABELS)
        aws.client("s3").put_object(Bucket=placeholder.bucket, Key=placeholder.key, Body=b"")
    return QualityWindow(
        has_data=True, reason=f"{len(files)} capture file(s) and {len(labels)} ground-truth file(s) to judge",
        files=len(files), label_files=len(labels), baseline_uri=str(baseline),
        capture_manifest_uri=str(put_manifest(work.join("input", "quality-capture.manifest"), files)),
        labels_manifest_uri=str(put_manifest(work.join("input", "ground-truth.manifest"),
                                             labels or [work.join("input", NO_LABELS).key])),
        report_uri=str(work.join("quality")), labelled_uri=str(work.join("labelled")), **known)


def put_manifest(uri: S3Uri, keys: list[str]) -> S3Uri:
    """A SageMaker ManifestFile listing these keys of the data bucket."""
    listed = manifest(uri.bucket, [{"s3_uri": s3_uri(uri.bucket, key)} for key in keys])
    aws.client("s3").put_object(Bucket=uri.bucket, Key=uri.key, ContentType="application/json",
                        Body=json.dumps(listed, indent=1).encode("utf-8"))
    return uri


def label_files(ground_truth: S3Uri, start: datetime, end: datetime) -> list[str]:
    """Ground-truth files in hour folders from the hour of `start` to `end`: labels arrive after their
    predictions, in the folder of the hour they arrived."""
    return hour_files(ground_truth, start.replace(minute=0, second=0, microsecond=0), end)


def window_start(model: str, endpoint: dict[str, Any], end: datetime) -> datetime:
    """The later of the last analysed window's end and the serving model's deployment, within MAX_WINDOW."""
    candidates = [parse(endpoint["deployed_at"]), end - MAX_WINDOW]
    last = ledger.last_window_end(model)
    if last:
        candidates.append(parse(last))
    return min(max(candidates), end)


def capture_files(capture: S3Uri, start: datetime, end: datetime) -> list[str]:
    """Keys of the capture files in hour folders overlapping [start - CAPTURE_DELAY, end], oldest first."""
    return hour_files(capture, (start - CAPTURE_DELAY).replace(minute=0, second=0, microsecond=0), end)


def hour_files(folder: S3Uri, first: datetime, end: datetime) -> list[str]:
    """Keys under <folder>/yyyy/mm/dd/hh/ for the hours from `first` to `end`, oldest first."""
    keys = []
    for day in days(first, end):
        prefix = folder.join(f"{day:%Y/%m/%d}").key + "/"
        for key in list_keys(folder.bucket, prefix):
            hour = hour_of(key, prefix, day)
            if hour is not None and first <= hour <= end:
                keys.append(key)
    return sorted(keys)


def days(first: datetime, last: datetime) -> Iterator[datetime]:
    day = first.replace(hour=0)
    while day <= last:
        yield day
        day += timedelta(days=1)


def hour_of(key: str, day_prefix: str, day: datetime) -> datetime | None:
    """The hour folder a key sits in (<day prefix>hh/...), or None for anything else."""
    folder, _, name = key[len(day_prefix):].partition("/")
    if not (folder.isdigit() and len(folder) == 2 and int(folder) < 24 and name):
        return None
    return day.replace(hour=int(folder))


def list_keys(bucket: str, prefix: str) -> Iterator[str]:
    for page in aws.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def copy_baseline(baseline_uri: str, target: S3Uri, drift_threshold: float) -> S3Uri:
    """statistics.json as is; constraints.json with the config's drift threshold (Model Monitor's
    monitoring_config.distribution_constraints comparison thresholds)."""
    source = S3Uri.parse(baseline_uri)
    statistics, constraints = (read_json(source.join(name)) for name in BASELINE_FILES)
    distribution = constraints.setdefault("monitoring_config", {}).setdefault("distribution_constraints", {})
    distribution["comparison_threshold"] = drift_threshold
    distribution["categorical_comparison_threshold"] = drift_threshold
    for name, document in zip(BASELINE_FILES, (statistics, constraints), strict=True):
        aws.client("s3").put_object(Bucket=target.bucket, Key=target.join(name).key, ContentType="application/json",
                            Body=json.dumps(document).encode("utf-8"))
    return target


def read_json(uri: S3Uri) -> dict[str, Any]:
    return aws.read_json(uri, "baseline file", MAX_BASELINE_BYTES, BaselineNotFound, BaselineNotFound)


def iso(moment: datetime) -> str:
    return ledger.timestamp(moment)


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
