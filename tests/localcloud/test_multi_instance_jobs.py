"""A job on several instances: one process per host, each with SageMaker's per-host layout (resourceconfig.json,
SM_HOSTS and SM_CURRENT_HOST from the training toolkit), its share of each channel (ShardedByS3Key) or all of it
(FullyReplicated), its peers reachable by name; Completed only when every host succeeded, and every host's outputs
gathered (docs/aws-contract.md, "Jobs on several instances")."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from selfheal_bench.fixtures.containers import BUCKET, tarball

from .test_processing_container import processing_request
from .test_training_container import CODE_CHANNEL, training_request

# Records what its host got: its resourceconfig.json, the toolkit's SM_* variables and the files of each channel.
TRAINING_RECORDER = """
import json, os
from pathlib import Path
host = os.environ["SM_CURRENT_HOST"]
base = Path(os.environ["SELFHEAL_OPT_ML"])
seen = {"resourceconfig": json.loads((base / "input/config/resourceconfig.json").read_text()),
        "sm_hosts": json.loads(os.environ["SM_HOSTS"]), "sm_current_host": host,
        "channels": {name: sorted(p.name for p in Path(os.environ["SM_CHANNEL_" + name.upper()]).iterdir())
                     for name in ("train", "validation")}}
Path(os.environ["SM_MODEL_DIR"], f"seen-{host}.json").write_text(json.dumps(seen))
"""
PROCESSING_RECORDER = """
import json, os, sys
from pathlib import Path
config = json.loads(Path(os.environ["SELFHEAL_OPT_ML"], "config", "resourceconfig.json").read_text())
seen = {"resourceconfig": config, "data": sorted(p.name for p in Path(sys.argv[1]).iterdir())}
Path(sys.argv[2], "seen-" + config["current_host"] + ".json").write_text(json.dumps(seen))
"""
# algo-1 serves on a fixed port, as the XGBoost container's tracker does on 9099; algo-2 finds it by name.
PEERS = """
import json, os, socket, sys, time
from pathlib import Path
config = json.loads(Path(os.environ["SELFHEAL_OPT_ML"], "config", "resourceconfig.json").read_text())
if config["current_host"] == "algo-1":
    server = socket.create_server((socket.gethostbyname("algo-1"), 9099))
    server.settimeout(60)
    connection, _ = server.accept()
    Path(sys.argv[2], "heard.txt").write_bytes(connection.recv(100))
else:
    for attempt in range(600):  # bounded: until algo-1 listens
        try:
            with socket.create_connection(("algo-1", 9099), timeout=5) as connection:
                connection.sendall(b"hello from " + config["current_host"].encode())
            break
        except ConnectionRefusedError:
            time.sleep(0.1)
"""
# algo-2 fails at once; algo-1 would wait for it forever, as a worker waits for a peer that died.
ONE_HOST_FAILS = """
import json, os, time
from pathlib import Path
base = Path(os.environ["SELFHEAL_OPT_ML"])
if json.loads((base / "config" / "resourceconfig.json").read_text())["current_host"] == "algo-2":
    (base / "output").mkdir(exist_ok=True)
    (base / "output" / "failure").write_text("algo-2 ran out of memory")
    raise SystemExit(1)
time.sleep(10**6)
"""
# Every host writes the same name with its own contents.
CLASH = """
import json, os, sys
from pathlib import Path
host = json.loads(Path(os.environ["SELFHEAL_OPT_ML"], "config", "resourceconfig.json").read_text())["current_host"]
Path(sys.argv[2], "report.json").write_text(json.dumps({"host": host}))
"""


def given_objects(s3: Any, prefix: str, names: list[str]) -> None:
    for name in names:
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{name}", Body=name.encode())


def two_host_training(name: str) -> dict[str, Any]:
    request = training_request(name, CODE_CHANNEL)
    request["ResourceConfig"]["InstanceCount"] = 2
    request["InputDataConfig"] += [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/train", "S3DataDistributionType": "ShardedByS3Key"}}},
        {"ChannelName": "validation", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/validation",
            "S3DataDistributionType": "FullyReplicated"}}}]
    return request


def two_host_processing(name: str, script: str, distribution: str = "FullyReplicated") -> dict[str, Any]:
    request = processing_request(name, isolated=True)
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = 2
    request["AppSpecification"] |= {
        "ContainerEntrypoint": ["python3", "-c", script],
        "ContainerArguments": ["/opt/ml/processing/input/data", "/opt/ml/processing/output"]}
    request["ProcessingInputs"][0]["S3Input"] |= {"S3Uri": f"s3://{BUCKET}/in", "S3DataDistributionType": distribution}
    return request


def model_files(s3: Any, job: Any) -> dict[str, Any]:
    body = s3.get_object(Bucket=BUCKET, Key=job.model_artifacts.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {member.name: json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
                for member in tar.getmembers()}


def test_a_two_instance_training_job_runs_a_process_per_host_each_with_its_shard(s3, run_job):
    # Given the code, a train channel of 4 objects dealt out by key, and a validation channel copied to every host
    s3.put_object(Bucket=BUCKET, Key="code/sourcedir.tar.gz", Body=tarball({"train.py": TRAINING_RECORDER}))
    given_objects(s3, "train", ["a.csv", "b.csv", "c.csv", "d.csv"])
    given_objects(s3, "validation", ["v.csv"])
    # When a training job runs on 2 instances
    job = run_job("training", two_host_training("two-hosts"))
    # Then it completes, every host's model files aggregated into the one model.tar.gz
    assert job.status == "Completed", job.failure_reason
    seen = model_files(s3, job)
    assert set(seen) == {"seen-algo-1.json", "seen-algo-2.json"}
    for host in ("algo-1", "algo-2"):
        mine = seen[f"seen-{host}.json"]
        # each host told who it is and who its peers are, in resourceconfig.json and by the toolkit's SM_* variables
        assert mine["resourceconfig"] == {
            "current_host": host, "current_instance_type": "ml.m5.large", "current_group_name": "homogeneousCluster",
            "hosts": ["algo-1", "algo-2"], "network_interface_name": "eth0",
            "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.m5.large",
                                 "hosts": ["algo-1", "algo-2"]}]}
        assert (mine["sm_hosts"], mine["sm_current_host"]) == (["algo-1", "algo-2"], host)
        # with the whole validation channel
        assert mine["channels"]["validation"] == ["v.csv"]
    # and half of the train channel's objects each, together all of them, none twice
    shards = [seen[f"seen-{host}.json"]["channels"]["train"] for host in ("algo-1", "algo-2")]
    assert [len(shard) for shard in shards] == [2, 2]
    assert sorted(shards[0] + shards[1]) == ["a.csv", "b.csv", "c.csv", "d.csv"]
    # and the job reports each host's process
    assert [host.as_dict()["host"] for host in job.hosts] == ["algo-1", "algo-2"]
    assert all(host.exit_code == 0 and host.seconds > 0 for host in job.hosts)


def test_a_two_instance_processing_job_tells_each_host_its_place_and_shards_by_key(s3, run_job):
    # Given 3 input objects dealt out by key
    given_objects(s3, "in", ["x.csv", "y.csv", "z.csv"])
    # When a processing job runs on 2 instances
    job = run_job("processing", two_host_processing("two-hosts-prep", PROCESSING_RECORDER, "ShardedByS3Key"))
    # Then both hosts' outputs are uploaded, each host having read /opt/ml/config/resourceconfig.json
    assert job.status == "Completed", job.failure_reason
    seen = {host: json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/two-hosts-prep/seen-{host}.json")["Body"].read())
            for host in ("algo-1", "algo-2")}
    for host, mine in seen.items():
        assert mine["resourceconfig"] == {"current_host": host, "hosts": ["algo-1", "algo-2"]}
    # and each got about half the objects (3 objects: 2 and 1), all of them between the two
    assert sorted(len(mine["data"]) for mine in seen.values()) == [1, 2]
    assert sorted(seen["algo-1"]["data"] + seen["algo-2"]["data"]) == ["x.csv", "y.csv", "z.csv"]


def test_fully_replicated_input_gives_every_host_all_of_it(s3, run_job):
    given_objects(s3, "in", ["x.csv", "y.csv", "z.csv"])
    job = run_job("processing", two_host_processing("replicated", PROCESSING_RECORDER, "FullyReplicated"))
    assert job.status == "Completed", job.failure_reason
    for host in ("algo-1", "algo-2"):
        mine = json.loads(s3.get_object(Bucket=BUCKET, Key=f"out/replicated/seen-{host}.json")["Body"].read())
        assert mine["data"] == ["x.csv", "y.csv", "z.csv"]


def test_hosts_reach_each_other_by_name_on_a_fixed_port(s3, run_job):
    # Given a job whose first host listens on port 9099 (as the XGBoost tracker does) and whose second connects by name
    given_objects(s3, "in", ["x.csv"])
    # When it runs on 2 instances
    job = run_job("processing", two_host_processing("peers", PEERS))
    # Then algo-2 reached algo-1
    assert job.status == "Completed", job.failure_reason
    assert s3.get_object(Bucket=BUCKET, Key="out/peers/heard.txt")["Body"].read() == b"hello from algo-2"


def test_a_failing_host_fails_the_job_with_its_reason_and_stops_the_others(s3, run_job):
    # Given a job whose second host fails while the first would wait for it forever
    given_objects(s3, "in", ["x.csv"])
    # When it runs on 2 instances (run_job waits at most JOB_TIMEOUT)
    job = run_job("processing", two_host_processing("one-fails", ONE_HOST_FAILS))
    # Then the failure fired on algo-2, and the job failed with its reason
    hosts = {host.name: host for host in job.hosts}
    assert hosts["algo-2"].exit_code == 1
    assert job.status == "Failed"
    assert job.failure_reason == "AlgorithmError: algo-2 ran out of memory"
    # and algo-1 was stopped rather than left waiting
    assert hosts["algo-1"].process.poll() is not None and hosts["algo-1"].exit_code is None


def test_hosts_writing_the_same_output_name_with_different_contents_fail_the_job(s3, run_job):
    # Given a job whose hosts each write report.json, with their own contents
    given_objects(s3, "in", ["x.csv"])
    # When it runs on 2 instances
    job = run_job("processing", two_host_processing("clash", CLASH))
    # Then the job fails (SageMaker does not say which host's file it keeps): nothing is uploaded
    assert job.status == "Failed"
    assert job.failure_reason == ("ClientError: hosts algo-1 and algo-2 both wrote report.json with different "
                                  "contents: each host must write names of its own")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/clash/")
