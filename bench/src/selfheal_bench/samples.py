"""What the account holds when each sample event in events/ arrives.

`selfheal local invoke` puts it into its fresh local cloud before it runs a sample event, so each
event meets the world it was written for: the success cases succeed, and the rest are refused by name,
as they would be on an account that held the same things. The events stay exactly as written (and as
`sam local invoke` sends them): the objects they name are put at those keys, an upload at the very
version id the event names; model packages are registered up to the version the event names; the
ledger holds the items the function reads; an endpoint serves a model trained on generated data.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import xgboost as xgb
import yaml
from selfheal_shared import ledger

from selfheal.project import find_project

from .code_roots import import_from
from .datagen import churn_frame
from .localcloud import LocalCloud
from .localcloud.template import ACCOUNT_ID, REGION

MODEL = "churn"
CHURN = {"target": "churned", "problem": "binary", "metric": {"name": "auc", "threshold": 0.75}}
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/selfheal-local-SageMakerExecutionRole"


class Scene:
    """The local account a sample event is run against, and what was put in it (for people to read)."""

    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.seeded: list[str] = []

    def config(self, model: str = MODEL, **fields: Any) -> None:
        config = CHURN | fields
        self.cloud.put_model_config(model, config)
        self.seeded.append(f"config/{model}.yaml ({yaml.safe_dump(config, default_flow_style=True).strip()})")

    def object(self, uri: str, body: bytes, version_id: str | None = None) -> None:
        key = uri.removeprefix(f"s3://{self.cloud.bucket}/")
        self.cloud.seed_object(key, body, version_id)
        self.seeded.append(f"s3://{self.cloud.bucket}/{key}" + (f" (version {version_id})" if version_id else ""))

    def json(self, uri: str, document: Any) -> None:
        self.object(uri, json.dumps(document, indent=1).encode())

    def packages(self, arn: str, status: str, run_id: str | None = None) -> None:
        """Register packages in the ARN's group until it holds the ARN's version, the last with `status`."""
        group, version = arn.rsplit("/", 2)[-2:]
        sagemaker = self.cloud.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName=group)
        for number in range(1, int(version) + 1):
            last = number == int(version)
            sagemaker.create_model_package(
                ModelPackageGroupName=group, ModelApprovalStatus=status if last else "Approved",
                InferenceSpecification={"Containers": [{"Image": self.cloud.template.parameters["XGBoostImageUri"],
                                                        "ModelDataUrl": self._uri(f"models/{group}/{number}.tar.gz")}],
                                        "SupportedContentTypes": ["text/csv"],
                                        "SupportedResponseMIMETypes": ["application/json"]},
                **({"CustomerMetadataProperties": {"run_id": run_id}} if last and run_id else {}))
        self.seeded.append(f"model packages {group}/1..{version} (the last {status})")

    def endpoint(self, name: str, target: str, problem: str) -> None:
        """An endpoint serving a model of `problem` that predicts `target`, trained on generated churn data."""
        config = f"{name}-sample"
        model_uri = self._uri(f"models/{config}/model.tar.gz")
        self.cloud.seed_object(model_uri.removeprefix(f"s3://{self.cloud.bucket}/"),
                               sample_model(churn_frame(300, seed=11), target, problem))
        sagemaker = self.cloud.client("sagemaker")
        # As DeployPipeline creates it: network-isolated, the code inside model.tar.gz (RegisterModel's environment).
        sagemaker.create_model(ModelName=config, ExecutionRoleArn=ROLE, EnableNetworkIsolation=True, PrimaryContainer={
            "Image": self.cloud.template.parameters["XGBoostImageUri"], "ModelDataUrl": model_uri,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}})
        sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
            "VariantName": "AllTraffic", "ModelName": config, "InstanceType": "ml.m5.large",
            "InitialInstanceCount": 1}])
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=config)
        self.cloud.wait_idle(timeout=120)
        self.seeded.append(f"endpoint {name} serving a {problem} model of {target!r} (config {config})")

    def ledger(self, what: str, write: Callable[[], Any]) -> None:
        write()
        self.seeded.append(f"ledger: {what}")

    def _uri(self, key: str) -> str:
        return f"s3://{self.cloud.bucket}/{key}"


def sample_model(frame: pd.DataFrame, target: str, problem: str) -> bytes:
    """model.tar.gz as ml/train.py lays it out (xgboost-model, transform.json, the serving scripts),
    from a few boosting rounds on `frame`: enough to serve real predictions, quick to make."""
    train = import_from(find_project() / "ml", "train.py", "selfheal_sample_train", isolated=True)
    transform = train.FeatureTransform.fit(frame, target, problem)
    data = xgb.DMatrix(transform.apply(frame), label=transform.encode_target(frame[target]))
    booster = xgb.train(train.xgboost_params(problem, transform, {"max_depth": 3}), data, num_boost_round=10)
    with tempfile.TemporaryDirectory() as folder:
        transform.save(Path(folder) / "transform.json")
        train.save_model(Path(folder) / "model", booster, Path(folder) / "transform.json")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path in sorted((Path(folder) / "model").iterdir()):
                archive.add(path, arcname=path.name)
    return buffer.getvalue()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


# -- each event's world ----------------------------------------------------------------------------------------


def _upload(scene: Scene, event: dict[str, Any], body: bytes, configured: bool = True) -> None:
    """An upload at the key and version the Object Created event names."""
    if configured:
        scene.config()
    obj = event["detail"]["object"]
    scene.object(obj["key"], body, obj.get("version-id"))


def _approval(mode: str) -> Callable[[Scene, dict[str, Any]], None]:
    def seed(scene: Scene, event: dict[str, Any]) -> None:
        scene.config(approval=mode)
        detail = event["detail"]
        scene.packages(detail["ModelPackageArn"], detail["ModelApprovalStatus"],
                       detail.get("CustomerMetadataProperties", {}).get("run_id"))
    return seed


def _evaluation(challenger: dict[str, float], champion: dict[str, float] | None = None) -> Callable[..., None]:
    """evaluation.json as ml/evaluate.py writes it, and the run's ledger item the gate updates."""
    def seed(scene: Scene, event: dict[str, Any]) -> None:
        scene.ledger(f"run {event['run_id']} RUNNING",
                     lambda: ledger.put_run(event["model"], event["run_id"], status="RUNNING"))
        scene.json(event["evaluation_uri"], {
            "binary_classification_metrics": {name: {"value": value, "standard_deviation": "NaN"}
                                              for name, value in challenger.items()},
            "selfheal": {"problem": "binary", "metric": "auc", "greater_is_better": True, "test_rows": 500,
                         "class_rows": {"0": {"train": 2300, "test": 330}, "1": {"train": 1200, "test": 170}},
                         "challenger": challenger, "champion": champion,
                         "champion_model_package_arn": champion and f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:"
                                                                   "model-package/selfheal-churn/1"}})
    return seed


def _package(status: str, endpoint: bool = False) -> Callable[[Scene, dict[str, Any]], None]:
    def seed(scene: Scene, event: dict[str, Any]) -> None:
        scene.config()
        scene.packages(event["model_package_arn"], status, event["run_id"])
        if endpoint:
            scene.endpoint(f"selfheal-{event['model']}", "churned", "binary")
    return seed


def _serving(scene: Scene, event: dict[str, Any]) -> None:
    """A model deployed two hours ago with its baselines (drift and quality), the last hour's captured traffic,
    and labels for some of it."""
    scene.config()
    now = datetime.now(UTC)
    run = "churn-upload-1a2b3c4d5e6f"
    artifacts = f"s3://{scene.cloud.bucket}/artifacts/{MODEL}/{run}"
    baseline = import_from(find_project() / "ml", "baseline.py", "selfheal_sample_baseline", isolated=True)
    frame = churn_frame(300, seed=3)
    statistics, constraints = baseline.build_baseline(frame.drop(columns=["churned"]))
    scene.json(f"{artifacts}/preprocess/baseline/statistics.json", statistics)
    scene.json(f"{artifacts}/preprocess/baseline/constraints.json", constraints)
    scene.json(f"{artifacts}/evaluation/quality_baseline.json", {
        "problem": "binary", "target": "churned", "features": [c for c in frame.columns if c != "churned"],
        "labels": ["0", "1"], "calibration": {"method": "none", "maps": []}})
    scene.ledger(f"run {run}", lambda: ledger.put_run(MODEL, run, artifacts_uri=artifacts, status="SUCCEEDED"))
    scene.ledger("ENDPOINT selfheal-churn, deployed two hours ago", lambda: ledger.record_endpoint(
        MODEL, {"outcome": "deployed", "at": ledger.timestamp(now - timedelta(hours=2))},
        endpoint_name="selfheal-churn", status="InService", baseline_uri=f"{artifacts}/preprocess/baseline",
        model_package_arn=f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model-package/selfheal-churn/1",
        run_id=run, deployed_at=ledger.timestamp(now - timedelta(hours=2))))
    hour = now - timedelta(minutes=5)
    scene.object(f"capture/{MODEL}/selfheal-churn/AllTraffic/{hour:%Y/%m/%d/%H}/capture-0.jsonl",
                 b'{"captureData": {}, "eventMetadata": {}, "eventVersion": "0"}\n')
    scene.object(f"ground-truth/{MODEL}/{now:%Y/%m/%d/%H}/labels-0.jsonl",
                 b'{"groundTruthData": {"data": "1", "encoding": "CSV"}, "eventMetadata": {"eventId": "r-1"}, '
                 b'"eventVersion": "0"}\n')


def _smoke(scene: Scene, event: dict[str, Any]) -> None:
    scene.endpoint(event["endpoint_name"], event["target"], event["problem"])
    scene.object(event["test_uri"], csv_bytes(churn_frame(20, seed=5)))


def _violations(scene: Scene, event: dict[str, Any]) -> None:
    """The monitor's report of drift on two features, and a newer dataset a retrain can use."""
    scene.config(retrain={"on_violation": "retrain"})
    report = event["window"]["report_uri"]
    drifted = {"monthly_charges": 0.41, "plan": 0.3}
    scene.json(f"{report}/constraint_violations.json", {"violations": [
        {"feature_name": name, "constraint_check_type": "baseline_drift_check",
         "description": f"Baseline drift distance: {distance} exceeds threshold: 0.1"}
        for name, distance in drifted.items()]})
    scene.json(f"{report}/drift_metrics.json", {
        "version": 0, "rows": 300, "records": 300, "empty": False, "emit_metrics": True, "violation_count": 2,
        "features": {name: {"distance": distance, "threshold": 0.1, "drifted": True}
                     for name, distance in drifted.items()}})
    key, recorded_at = f"datasets/{MODEL}/20251126T100000000000Z/shifted.csv", "20251126T100000000000Z"
    body = csv_bytes(churn_frame(400, seed=9, shift=1.0))
    scene.object(key, body)
    scene.ledger(f"dataset {key}", lambda: ledger.record_dataset(
        MODEL, key=f"incoming/{MODEL}/shifted.csv", version_id=None, s3_uri=f"s3://{scene.cloud.bucket}/{key}",
        rows=400, columns=9, bytes=len(body), format="csv", recorded_at=recorded_at))


def _quality(realized: float, pending: bool) -> Callable[[Scene, dict[str, Any]], None]:
    """The model-quality job's report on 400 labelled predictions, and the labelled requests it kept;
    with `pending`, a retrain waiting for labels since an earlier drift."""
    def seed(scene: Scene, event: dict[str, Any]) -> None:
        scene.config(retrain={"on_violation": "retrain"})
        window = event["window"]
        if window["has_data"]:
            _violations(scene, event)
        quality = window["quality"]
        violated = realized < 0.75
        scene.json(f"{quality['report_uri']}/quality_metrics.json", {
            "problem": "binary", "metric": "auc", "threshold": 0.75,
            "labels": {"records": 500, "matched": 400, "missing": 100, "pending": 0, "late": 0},
            "metrics": {"auc": realized}, "estimated": {"auc": 0.88}, "estimation": "confidence-based (CBPE)",
            "violations": [{"metric_name": "auc", "constraint_check_type": "LessThanThreshold",
                            "description": f"Metric auc with {realized} was LessThanThreshold '0.75'"}]
            if violated else [],
            "labelled": {"file": "labelled_traffic.csv", "rows": 400, "columns": 9}})
        scene.object(f"{quality['labelled_uri']}/labelled_traffic.csv",
                     csv_bytes(churn_frame(400, seed=12, shift=1.0, concept=1.0)))
        if pending:
            scene.ledger("PENDING_RETRAIN since an earlier drift", lambda: ledger.set_pending_retrain(
                MODEL, since="2025-11-26T08:00:00.000000Z", execution="monitor-churn-earlier0000", reason="drift"))
    return seed


def _config_only(scene: Scene, event: dict[str, Any]) -> None:
    scene.config()


def _nothing(scene: Scene, event: dict[str, Any]) -> None:
    """The event itself says all there is (or names what no account holds)."""


WORLDS: dict[str, Callable[[Scene, dict[str, Any]], None]] = {
    "approval/approved_by_hand.json": _approval("manual"),
    "approval/registered_approved.json": _approval("auto"),
    "evaluate_gate/pass.json": _evaluation({"auc": 0.91, "accuracy": 0.86, "f1": 0.8, "logloss": 0.3}),
    "evaluate_gate/fail_threshold.json": _evaluation({"auc": 0.62, "accuracy": 0.7, "f1": 0.4, "logloss": 0.6}),
    "evaluate_gate/fail_champion.json": _evaluation({"auc": 0.885, "logloss": 0.3}, {"auc": 0.88, "logloss": 0.31}),
    "evaluate_gate/missing_metric.json": _evaluation({"accuracy": 0.86, "f1": 0.8}),
    "ingest/valid_csv.json": lambda scene, event: _upload(scene, event, csv_bytes(churn_frame(1200, seed=1))),
    "ingest/duplicate_delivery.json": lambda scene, event: _upload(scene, event, csv_bytes(churn_frame(1200, seed=1))),
    "ingest/parquet.json": lambda scene, event: _upload(scene, event, parquet_bytes(churn_frame(800, seed=2))),
    "ingest/bad_csv.json": lambda scene, event: _upload(scene, event, csv_bytes(
        churn_frame(100, seed=4).assign(plan=lambda f: f["plan"].where(f.index != 7, '=HYPERLINK("http://x")')))),
    "ingest/unknown_model.json": lambda scene, event: _upload(scene, event, csv_bytes(churn_frame(100, seed=6)),
                                                              configured=False),
    "ingest/outside_incoming.json": _config_only,
    "ingest/other_bucket.json": _config_only,
    "prepare_deploy/first_deployment.json": _package("Approved"),
    "prepare_deploy/blue_green_update.json": _package("Approved", endpoint=True),
    "prepare_deploy/pending_package.json": _package("PendingManualApproval"),
    "prepare_monitor/on_demand.json": _serving,
    "prepare_monitor/scheduled.json": _serving,
    "record_deployment/deployed.json": _package("Approved"),
    "record_deployment/prepare_failed.json": _config_only,
    "record_deployment/rolled_back_by_alarm.json": _config_only,
    "record_deployment/smoke_test_failed.json": _config_only,
    "record_run/registered.json": _config_only,
    "record_run/rejected.json": _config_only,
    "record_run/failed.json": _config_only,
    "register_model/auto.json": _config_only,
    "register_model/manual.json": lambda scene, event: scene.config(approval="manual"),
    "smoke_test/binary.json": _smoke,
    "smoke_test/multiclass.json": _smoke,
    "smoke_test/regression.json": _smoke,
    "violation/report.json": _violations,
    "violation/no_data.json": _config_only,
    "violation/analysis_failed.json": _config_only,
    "violation/quality.json": _quality(realized=0.61, pending=False),
    "violation/labels_arrived.json": _quality(realized=0.86, pending=True),
}


def sample_name(event_path: Path) -> str | None:
    """events/<function>/<file> for a sample event of this project, else None (a user's own event)."""
    try:
        return event_path.resolve().relative_to(find_project() / "events").as_posix()
    except ValueError:
        return None


def seed(cloud: LocalCloud, function: str, event_path: Path, event: dict[str, Any]) -> list[str]:
    """Put the world a sample event assumes into the cloud, as `function` would see it (the ledger's
    helpers read its environment); returns what was put there. Nothing for an event not of the samples."""
    name = sample_name(event_path)
    if name not in WORLDS:
        return []
    scene = Scene(cloud)
    with cloud.as_function(function):
        WORLDS[name](scene, event)
    return scene.seeded


