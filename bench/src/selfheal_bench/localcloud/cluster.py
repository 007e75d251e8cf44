"""A job's instances here: SageMaker's per-host layout for an N-instance job, run as N processes on this machine.

SageMaker names a job's hosts algo-1 .. algo-N and tells each container who it is and who its peers are in
resourceconfig.json: /opt/ml/input/config/ for training ("Distributed Training Configuration": current_host,
current_instance_type, current_group_name, hosts, instance_groups, network_interface_name; the training toolkit turns
it into SM_HOSTS, SM_CURRENT_HOST, ...), /opt/ml/config/ for processing ("How Amazon SageMaker Processing Provides
Information About Your Processing Container": current_host and hosts). A channel or processing input is copied whole
to every host (FullyReplicated) or dealt out by S3 key (ShardedByS3Key: "each instance gets approximately 1/n of the
number of S3 objects"; which objects go where is not documented, so a script must not rely on it: here, round robin
over the objects in key or manifest order). The hosts resolve each other's names; here each job gets addresses of its
own on the loopback network (127.a.b.<host>), written as a hosts file the job's processes read (hostnames/), so a
server on a fixed port, as the XGBoost container's tracker on 9099, cannot clash with another job's.

At the end SageMaker gathers every host's outputs: "If multiple containers in a single training job write to this
directory they should ensure no file/directory names clash. SageMaker aggregates the result" ("How Amazon SageMaker
Processes Training Output"). Which host's file wins a clash is not documented: here a clash of different contents
fails the job (stricter); identical files, as every host writing the same report, are kept once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

HOSTNAMES_DIR = Path(__file__).resolve().parent / "hostnames"
NETWORK_INTERFACE = "eth0"
GROUP = "homogeneousCluster"


class OutputClash(RuntimeError):
    """Two hosts wrote the same output path with different contents."""


def instance_count(kind: str, request: dict[str, Any]) -> int:
    if kind == "training":
        return int(request["ResourceConfig"]["InstanceCount"])
    return int(request["ProcessingResources"]["ClusterConfig"]["InstanceCount"])


def host_names(count: int) -> list[str]:
    return [f"algo-{number}" for number in range(1, count + 1)]


def shard(items: list[Any], host: str, hosts: list[str], distribution: str) -> list[Any]:
    """What one host gets of a channel's objects (in key or manifest order)."""
    if distribution == "FullyReplicated":
        return items
    if distribution != "ShardedByS3Key":
        raise ValueError(f"S3DataDistributionType {distribution} is not supported locally")
    return items[hosts.index(host)::len(hosts)]


def training_resource_config(host: str, hosts: list[str], instance_type: str) -> dict[str, Any]:
    return {"current_host": host, "current_instance_type": instance_type, "current_group_name": GROUP,
            "hosts": hosts, "instance_groups": [{"instance_group_name": GROUP, "instance_type": instance_type,
                                                 "hosts": hosts}],
            "network_interface_name": NETWORK_INTERFACE}


def processing_resource_config(host: str, hosts: list[str]) -> dict[str, Any]:
    return {"current_host": host, "hosts": hosts}


def loopback_addresses(seed: str, hosts: list[str]) -> dict[str, str]:
    """Addresses of the job's own on the loopback network (all of 127.0.0.0/8 is this machine's)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return {host: f"127.{digest[0]}.{digest[1]}.{number}" for number, host in enumerate(hosts, start=1)}


def host_threads(hosts: int) -> dict[str, str]:
    """Each instance has cores of its own; here the hosts share this machine's, so each host's OpenMP threads are its
    share of them (XGBoost's default nthread is OpenMP's maximum: N hosts each spinning on every core of the machine
    while they wait for each other run many times slower). One host keeps the machine's default."""
    if hosts == 1:
        return {}
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // hosts))}


def write_hosts_file(path: Path, addresses: dict[str, str]) -> Path:
    path.write_text("".join(f"{address} {host}\n" for host, address in addresses.items()))
    return path


def gather(folders: dict[str, Path], target: Path) -> None:
    """Every host's files of one output folder in `target`, failing on a clash of different contents."""
    owners: dict[Path, str] = {}
    for host, folder in folders.items():
        for path in sorted(folder.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(folder)
            destination = target / relative
            if relative in owners:
                if destination.read_bytes() != path.read_bytes():
                    raise OutputClash(f"hosts {owners[relative]} and {host} both wrote {relative} with different "
                                      "contents: each host must write names of its own")
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            owners[relative] = host
