"""PrepareMonitor: which captured traffic one MonitorPipeline execution analyses, against which baseline.

The window runs from where the last analysed window ended (or from the deployment of the serving
model, if later: older traffic was another model's) to now, at most MAX_WINDOW long. Capture files
sit in hour folders, <capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/ (SageMaker's layout); every file
whose hour overlaps the window, plus the hour before it (SageMaker buffers captures before writing
them), goes into a SageMaker ManifestFile, and ml/monitor.py keeps only the records whose
inferenceTime falls in the window. The serving model's baseline is copied beside the report with the
config's drift threshold, so the job compares exactly as the model's configuration says."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from selfheal_shared import aws, ledger
from selfheal_shared.config import read_model_config
from selfheal_shared.errors import SelfhealError
from selfheal_shared.instances import job_resources
from selfheal_shared.names import job_prefix_for
from selfheal_shared.runs import manifest
from selfheal_shared.s3uri import S3Uri, s3_uri
from selfheal_shared.serving import VARIANT
from selfheal_shared.serving_events import MonitorRequest, MonitorWindow
from selfheal_shared.settings import get_settings

MAX_WINDOW = timedelta(days=7)
CAPTURE_DELAY = timedelta(hours=1)
BASELINE_FILES = ("statistics.json", "constraints.json")


class BaselineNotFound(SelfhealError):
    """The serving model's baseline (statistics.json, constraints.json) is missing or unreadable."""


def prepare_monitor(request: MonitorRequest, now: datetime | None = None) -> dict[str, Any]:
    settings = get_settings()
    end = now or datetime.now(UTC)
    endpoint = ledger.get_endpoint(request.model)
    if not endpoint or not endpoint.get("model_package_arn"):
        return no_data(end, "no model serves: nothing to monitor")
    start = window_start(request.model, endpoint, end)
    capture = S3Uri(settings.data_bucket, f"capture/{request.model}/{endpoint['endpoint_name']}/{VARIANT}")
    files = capture_files(capture, start, end)
    if not files:
        return no_data(end, f"no captured traffic between {iso(start)} and {iso(end)}", endpoint, start)
    config = read_model_config(request.model)
    work = S3Uri(settings.data_bucket, f"monitoring/{request.model}/{request.execution}")
    baseline = copy_baseline(endpoint["baseline_uri"], work.join("baseline"), config.monitor.drift_threshold)
    manifest_uri = work.join("input", "capture.manifest")
    listed = manifest(settings.data_bucket, [{"s3_uri": s3_uri(settings.data_bucket, key)} for key in files])
    aws.s3().put_object(Bucket=manifest_uri.bucket, Key=manifest_uri.key, ContentType="application/json",
                        Body=json.dumps(listed, indent=1).encode("utf-8"))
    return MonitorWindow(
        has_data=True, reason=f"{len(files)} capture file(s) to analyse", endpoint_name=endpoint["endpoint_name"],
        start=iso(start), end=iso(end), files=len(files), baseline_uri=str(baseline),
        manifest_uri=str(manifest_uri), report_uri=str(work.join("report")),
        code_uri=s3_uri(settings.data_bucket, "code", settings.code_version),
        job_prefix=job_prefix_for(request.model, request.execution),
        instance_type=config.training.processing_instance_type,
        cluster=job_resources(config.training.processing_instance_type, settings.kms_key_arn),
    ).model_dump()


def no_data(end: datetime, reason: str, endpoint: dict[str, Any] | None = None,
            start: datetime | None = None) -> dict[str, Any]:
    return MonitorWindow(has_data=False, reason=reason, endpoint_name=endpoint and endpoint["endpoint_name"],
                         start=start and iso(start), end=iso(end), files=0, baseline_uri=None, manifest_uri=None,
                         report_uri=None, code_uri=None, job_prefix=None, instance_type=None,
                         cluster=None).model_dump()


def window_start(model: str, endpoint: dict[str, Any], end: datetime) -> datetime:
    """The later of the last analysed window's end and the serving model's deployment, within MAX_WINDOW."""
    candidates = [parse(endpoint["deployed_at"]), end - MAX_WINDOW]
    last = ledger.last_window_end(model)
    if last:
        candidates.append(parse(last))
    return min(max(candidates), end)


def capture_files(capture: S3Uri, start: datetime, end: datetime) -> list[str]:
    """Keys of the capture files in hour folders overlapping [start - CAPTURE_DELAY, end], oldest first."""
    first = (start - CAPTURE_DELAY).replace(minute=0, second=0, microsecond=0)
    keys = []
    for day in days(first, end):
        prefix = capture.join(f"{day:%Y/%m/%d}").key + "/"
        for key in list_keys(capture.bucket, prefix):
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
    for page in aws.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
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
        aws.s3().put_object(Bucket=target.bucket, Key=target.join(name).key, ContentType="application/json",
                            Body=json.dumps(document).encode("utf-8"))
    return target


def read_json(uri: S3Uri) -> dict[str, Any]:
    try:
        with aws.s3().get_object(Bucket=uri.bucket, Key=uri.key)["Body"] as body:
            document = json.loads(body.read())
    except ClientError as error:
        if error.response["Error"]["Code"] in {"NoSuchKey", "404"}:
            raise BaselineNotFound(f"no baseline file at {uri}") from None
        raise
    except ValueError as error:
        raise BaselineNotFound(f"{uri} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BaselineNotFound(f"{uri} is not a JSON object")
    return document


def iso(moment: datetime) -> str:
    return ledger.timestamp(moment)


def parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
