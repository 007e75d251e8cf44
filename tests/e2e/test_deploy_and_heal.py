"""Deploy and heal on the local cloud: rollouts, rollbacks, the monitor, and the retraining loop."""

from __future__ import annotations

import json
import re
import threading
import zlib
from pathlib import Path

import pytest
from selfheal_bench.datagen import CHURN_CONFIG, SHIFTED_FEATURES, TARGET, churn_frame
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.report import build_report, ledger_items
from selfheal_bench.runner import read_table, send_traffic

HEAL_CONFIG = CHURN_CONFIG | {
    "metric": {"name": "auc", "threshold": 0.75, "min_improvement": 0.01},
    "trigger": {"mode": "min_new_rows", "min_new_rows": 1000},
    "retrain": {"on_violation": "retrain", "window": {"mode": "latest"}},
}


def write(tmp_path: Path, name: str, rows: int, seed: int, shift: float = 0.0, with_target: bool = True) -> Path:
    path = tmp_path / name
    churn_frame(rows, seed, shift=shift, with_target=with_target).to_csv(path, index=False)
    return path


def deploy_first_model(cloud: LocalCloud, tmp_path: Path, config: dict | None = None) -> dict:
    cloud.put_model_config("churn", config or HEAL_CONFIG)
    cloud.upload("churn", write(tmp_path, "first.csv", 1500, seed=1))
    cloud.wait_idle()
    return build_report(cloud, ["churn"])


def serve(cloud: LocalCloud, tmp_path: Path, name: str, shift: float = 0.0, rows: int = 150) -> dict:
    return send_traffic(cloud, "churn", write(tmp_path, name, rows, seed=zlib.crc32(name.encode()) % 1000, shift=shift,
                                              with_target=False), TARGET)


# SageMaker's data capture ("Capture data from real-time endpoint", "View collected data"): JSON Lines under
# <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/, one record per request, each with exactly these fields.
CAPTURE_KEY = re.compile(r"capture/churn/selfheal-churn/AllTraffic/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+\.jsonl")
CAPTURED_PAYLOAD = {"observedContentType", "mode", "data", "encoding"}
INFERENCE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z")


def capture_files(cloud: LocalCloud) -> set[str]:
    listed = cloud.client("s3").list_objects_v2(Bucket=cloud.bucket, Prefix="capture/churn/").get("Contents", [])
    return {item["Key"] for item in listed}


def captured(cloud: LocalCloud, keys: set[str]) -> list[dict]:
    """The capture records in these files, each checked against SageMaker's format."""
    s3 = cloud.client("s3")
    records = []
    for key in keys:
        assert CAPTURE_KEY.fullmatch(key), key
        body = s3.get_object(Bucket=cloud.bucket, Key=key)["Body"].read().decode()
        records += [json.loads(line) for line in body.splitlines()]
    for record in records:
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"} and record["eventVersion"] == "0"
        assert set(record["captureData"]) == {"endpointInput", "endpointOutput"}
        for field, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
            payload = record["captureData"][field]
            assert set(payload) == CAPTURED_PAYLOAD and payload["mode"] == mode and payload["encoding"] == "CSV"
        assert record["captureData"]["endpointInput"]["observedContentType"] == "text/csv"
        assert set(record["eventMetadata"]) >= {"eventId", "inferenceTime"}
        assert INFERENCE_TIME.fullmatch(record["eventMetadata"]["inferenceTime"])
    return records


def monitor_shares(cloud: LocalCloud) -> dict[str, dict]:
    """Each drift-analysis host's share of the window (partial-<host>.json), by file name."""
    s3 = cloud.client("s3")
    listed = s3.list_objects_v2(Bucket=cloud.bucket, Prefix="monitoring/churn/").get("Contents", [])
    keys = [item["Key"] for item in listed if "/report/partials/" in item["Key"]]
    return {key.rsplit("/", 1)[-1]: json.loads(s3.get_object(Bucket=cloud.bucket, Key=key)["Body"].read())
            for key in keys}


def preprocess_shares(cloud: LocalCloud, run_id: str) -> tuple[list[str], int, dict[str, int]]:
    """What Preprocess's hosts wrote for the merge (their summaries, and how many datasets' rows), and the train
    files the encoding hosts wrote, with their sizes."""
    listed = cloud.client("s3").list_objects_v2(Bucket=cloud.bucket, Prefix=f"artifacts/churn/{run_id}/preprocess/"
                                                ).get("Contents", [])
    names = {item["Key"].split("/preprocess/", 1)[1]: item["Size"] for item in listed}
    return (sorted(name.rsplit("/", 1)[-1] for name in names if name.startswith("partials/partial-")),
            sum(name.startswith("partials/rows/rows-") for name in names),
            {name.rsplit("/", 1)[-1]: size for name, size in names.items() if name.startswith("train/")})


def check_rows(cloud: LocalCloud) -> int:
    """The rows the (merged) drift report analysed."""
    s3 = cloud.client("s3")
    listed = s3.list_objects_v2(Bucket=cloud.bucket, Prefix="monitoring/churn/").get("Contents", [])
    (key,) = [item["Key"] for item in listed if item["Key"].endswith("/report/drift_metrics.json")]
    return json.loads(s3.get_object(Bucket=cloud.bucket, Key=key)["Body"].read())["rows"]


def by_kind(result: dict, kind: str) -> list[dict]:
    """report.json's monitoring entries of one kind ("data" or "model_quality"): one of each per execution."""
    return [check for check in result["monitoring"] if check["kind"] == kind]


def sent_rows(path: Path) -> list[str]:
    """The request bodies send_traffic sent for a file: its rows as CSV lines, without header or target."""
    return read_table(path).to_csv(header=False, index=False, lineterminator="\n").splitlines()


def test_a_model_that_passes_the_gate_is_deployed_with_capture_scaling_and_a_monitor_schedule(cloud, tmp_path):
    # When the first dataset is uploaded
    result = deploy_first_model(cloud, tmp_path)
    # Then the run deployed its model: the endpoint serves that package, and the ledger says so
    (run,) = result["runs"]
    assert run["decision"] == "deployed", run
    endpoint = result["endpoints"]["churn"]
    assert endpoint["status"] == "InService" and endpoint["model_package_arn"] == run["model_package_arn"]
    assert [h["outcome"] for h in endpoint["history"]] == ["deployed"]
    # And report.json names the container it serves: the package's image and model, the code packed inside the
    # model where the network-isolated container reads it
    package = cloud.client("sagemaker").describe_model_package(ModelPackageName=run["model_package_arn"])
    (packaged,) = package["InferenceSpecification"]["Containers"]
    assert endpoint["model"] == {"image": packaged["Image"], "model_data_url": packaged["ModelDataUrl"],
                                 "environment": {"SAGEMAKER_PROGRAM": "inference.py",
                                                 "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
                                 "network_isolation": True}
    # And the endpoint answers like a client expects, with its traffic captured in SageMaker's format
    cloud.hosting.flush_capture()
    before = capture_files(cloud)  # the smoke test's requests
    sent = serve(cloud, tmp_path, "ordinary.csv")
    assert sent == {"model": "churn", "file": "ordinary.csv", "rows": 150, "errors": 0, "first_error": None}
    cloud.wait_idle()
    records = captured(cloud, capture_files(cloud) - before)
    assert sorted(r["captureData"]["endpointInput"]["data"] for r in records) == sorted(sent_rows(tmp_path /
                                                                                                   "ordinary.csv"))
    # And autoscaling tracks invocations per instance, and the monitor is scheduled hourly
    scaling = cloud.client("application-autoscaling").describe_scalable_targets(ServiceNamespace="sagemaker")
    assert [t["ResourceId"] for t in scaling["ScalableTargets"]] == ["endpoint/selfheal-churn/variant/AllTraffic"]
    schedules = cloud.client("scheduler").list_schedules()["Schedules"]
    assert any("churn" in s["Name"] for s in schedules)


# Every job that splits its work on 2 instances (issue 12): Train distributed, Preprocess and the drift analysis.
TWO_INSTANCES = HEAL_CONFIG | {"training": {"instance_count": 2, "processing_instance_count": 2},
                               "monitor": {"instance_count": 2}}


def test_traffic_like_the_baseline_finds_no_drift_and_changes_nothing(cloud, tmp_path):
    # Given a model whose jobs run on 2 instances each, where they can split their work, trained on two uploads
    cloud.put_model_config("churn", TWO_INSTANCES)
    for name, seed in (("first.csv", 1), ("second.csv", 3)):  # the first is too small to start a run alone
        cloud.upload("churn", write(tmp_path, name, 750, seed=seed))
        cloud.wait_idle()
    serve(cloud, tmp_path, "ordinary.csv", rows=300)
    cloud.start_monitoring("churn")
    cloud.wait_idle()
    result = build_report(cloud, ["churn"])
    (check,) = by_kind(result, "data")
    assert check["status"] == "Completed" and check["violations"] == [] and check["action"] == "none"
    # and with no labels yet, model quality is estimated from the model's scores, above the threshold
    (quality,) = by_kind(result, "model_quality")
    assert quality["labels"]["matched"] == 0 and quality["estimated"]["auc"] > 0.75
    (run,) = result["runs"]
    assert run["decision"] == "deployed" and run["metrics"]["auc"] > 0.75
    # and report.json lists each job with its instance count and every host's process
    jobs = {"-".join(job["name"].split("-")[2:-1]): job for job in result["jobs"]}  # <model>-<digest>-<step>-<retry>
    assert {step: job["instance_count"] for step, job in jobs.items()} == {
        "prep": 2, "prep-merge": 1, "prep-encode": 2, "train": 2, "eval": 1, "mon": 2, "mon-merge": 1, "mq": 1}
    # and Preprocess split the two uploads between its hosts, each host's share merged, then each host encoded one
    # upload's rows into a file for each training instance
    assert [d.rsplit("/", 1)[-1] for d in run["datasets"]] == ["first.csv", "second.csv"]
    summaries, rows_files, train_files = preprocess_shares(cloud, run["run_id"])
    assert (summaries, rows_files) == (["partial-algo-1.pkl", "partial-algo-2.pkl"], 2)
    assert sorted(train_files) == [f"train-algo-{h}-{i}-of-2.csv" for h in (1, 2) for i in (1, 2)]
    assert all(size > 0 for size in train_files.values())
    # and the drift analysis split the capture files between its hosts, each host's share merged into the report
    shares = monitor_shares(cloud)
    assert sorted(shares) == ["partial-algo-1.json", "partial-algo-2.json"]
    assert all(share["records"] > 0 for share in shares.values())
    assert sum(share["rows"] for share in shares.values()) == check_rows(cloud)
    for job in jobs.values():
        assert job["status"] == "Completed"
        hosts = [f"algo-{n}" for n in range(1, job["instance_count"] + 1)]
        assert [(h["host"], h["exit_code"]) for h in job["hosts"]] == [(host, 0) for host in hosts]
        assert all(h["seconds"] > 0 for h in job["hosts"])


def test_drift_retrains_on_the_newest_window_and_the_better_model_replaces_the_champion(cloud, tmp_path):
    # Given a deployed model and a newer, shifted labelled batch too small to train on its own
    deploy_first_model(cloud, tmp_path)
    cloud.upload("churn", write(tmp_path, "shifted.csv", 600, seed=2, shift=1.0))
    cloud.wait_idle()
    assert len(build_report(cloud, ["churn"])["runs"]) == 1
    # When shifted traffic is served and the monitor runs
    sent = serve(cloud, tmp_path, "shifted-traffic.csv", shift=1.0, rows=300)
    cloud.start_monitoring("churn")
    cloud.wait_idle()
    result = build_report(cloud, ["churn"])
    # Then the monitor found drift on the shifted features and, with labelled data the champion has not
    # seen, retrained
    (check,) = by_kind(result, "data")
    assert check["status"] == "CompletedWithViolations" and check["action"] == "retrain", check
    drifted = {v["feature_name"] for v in check["violations"] if v["constraint_check_type"] == "baseline_drift_check"}
    assert drifted and drifted <= set(SHIFTED_FEATURES)
    # And the drift run trained on the newest window only, beat the champion on the same rows, and now serves
    first, drift = result["runs"]
    assert drift["trigger"] == "drift" and drift["decision"] == "deployed", drift
    assert [d.rsplit("/", 1)[-1] for d in drift["datasets"]] == ["shifted.csv"]
    assert drift["metrics"]["auc"] > drift["champion_metrics"]["auc"] + 0.01
    endpoint = result["endpoints"]["churn"]
    assert endpoint["model_package_arn"] == drift["model_package_arn"]
    assert [h["outcome"] for h in endpoint["history"]] == ["deployed", "deployed"]
    assert sent["errors"] == 0


def test_the_same_violations_inside_the_cooldown_start_no_second_retrain(cloud, tmp_path):
    # Given a gate no retrain can pass, so the drifted champion keeps serving and keeps drifting
    deploy_first_model(cloud, tmp_path, HEAL_CONFIG | {
        "metric": {"name": "auc", "threshold": 0.75, "min_improvement": 0.99},
        "retrain": {"on_violation": "retrain", "cooldown_minutes": 600, "window": {"mode": "latest"}}})
    for attempt in range(2):  # each time with a new labelled batch the champion has not seen (too small to train on)
        cloud.upload("churn", write(tmp_path, f"shifted-{attempt}.csv", 600, seed=2 + attempt, shift=1.0))
        serve(cloud, tmp_path, f"shifted-traffic-{attempt}.csv", shift=1.0, rows=200)
        cloud.start_monitoring("churn")
        cloud.wait_idle()
    checks = by_kind(build_report(cloud, ["churn"]), "data")
    assert [c["action"] for c in checks][0] == "retrain"
    second = checks[1]
    assert second["action"] != "retrain" and "cooldown" in second["reason"].lower(), second
    assert sum(run["trigger"] == "drift" for run in build_report(cloud, ["churn"])["runs"]) == 1


@pytest.mark.parametrize("fault", ["endpoint:unhealthy", "endpoint:model_errors"])
def test_a_failing_new_model_is_rolled_back_and_the_old_one_serves_throughout(cloud, tmp_path, fault):
    # Given a deployed model
    first = deploy_first_model(cloud, tmp_path, HEAL_CONFIG | {"trigger": {"mode": "every_upload"}})
    champion = first["runs"][0]["model_package_arn"]
    # When a better model's rollout fails (its container is unhealthy, or it errors on every request)
    cloud.faults.add(fault, "fail", times=1)
    errors: list[int] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            errors.append(serve(cloud, tmp_path, "during.csv", rows=5)["errors"])

    cloud.upload("churn", write(tmp_path, "shifted.csv", 1200, seed=3, shift=1.0))
    worker = threading.Thread(target=client)
    worker.start()
    try:
        cloud.wait_idle()
    finally:
        stop.set()
        worker.join(timeout=60)
    # Then the rollout is recorded as rolled back and the old model still serves
    result = build_report(cloud, ["churn"])
    endpoint = result["endpoints"]["churn"]
    assert endpoint["status"] == "InService" and endpoint["model_package_arn"] == champion
    assert [h["outcome"] for h in endpoint["history"]] == ["deployed", "rolled_back"]
    assert result["runs"][1]["decision"] == "registered"
    if fault == "endpoint:unhealthy":  # the unhealthy model never took traffic
        assert sum(errors) == 0 and errors
    assert serve(cloud, tmp_path, "after.csv", rows=20)["errors"] == 0


def test_manual_approval_holds_deployment_until_the_package_is_approved(cloud, tmp_path):
    result = deploy_first_model(cloud, tmp_path, HEAL_CONFIG | {"approval": "manual"})
    (run,) = result["runs"]
    assert run["decision"] == "registered" and result["endpoints"] == {}
    cloud.approve_latest("churn")
    cloud.wait_idle()
    endpoint = build_report(cloud, ["churn"])["endpoints"]["churn"]
    assert endpoint["status"] == "InService" and endpoint["model_package_arn"] == run["model_package_arn"]


def test_ledger_keeps_which_package_serves(cloud, tmp_path):
    deploy_first_model(cloud, tmp_path)
    (champion,) = ledger_items(cloud, "churn", "CHAMPION")
    (endpoint,) = ledger_items(cloud, "churn", "ENDPOINT")
    assert champion["model_package_arn"] == endpoint["model_package_arn"]
