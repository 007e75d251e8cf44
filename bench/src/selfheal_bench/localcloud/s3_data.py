"""What SageMaker moves between S3 and a job's or a container's storage: File-mode inputs (an S3 prefix or a
manifest, all of it or an instance's share), outputs, and a code archive fetched for a container with network access.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

_clients: dict[tuple[str | None, ...], Any] = {}
_clients_lock = threading.Lock()
_CHUNK = 1 << 20


def s3_client() -> Any:
    """One client per region and credentials: making one costs more than most of the transfers it makes (every
    file of every job's inputs and outputs), and clients are thread-safe once made."""
    key = tuple(os.environ.get(name) for name in ("AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN"))
    with _clients_lock:
        if key not in _clients:
            _clients[key] = boto3.client("s3")
        return _clients[key]


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def download(uri: str, data_type: str, target: Path, required: bool = True,
             select: Callable[[list[tuple[str, str, str]]], list[tuple[str, str, str]]] | None = None) -> None:
    """Lay out S3 data as SageMaker does for File mode: S3Prefix keeps paths below the prefix. `select` picks an
    instance's share of the objects (cluster.shard)."""
    target.mkdir(parents=True, exist_ok=True)
    objects = _objects(uri, data_type)
    if required and not objects:
        raise ValueError(f"ClientError: No S3 objects found under S3 URL \"{uri}\"")
    for bucket, key, relative in (select(objects) if select else objects):
        _fetch(bucket, key, target / relative)


def _objects(uri: str, data_type: str) -> list[tuple[str, str, str]]:
    """(bucket, key, path below the target) of every object an S3 data source names, in key or manifest order."""
    bucket, prefix = split_s3_uri(uri)
    if data_type == "ManifestFile":
        manifest = json.loads(s3_client().get_object(Bucket=bucket, Key=prefix)["Body"].read())
        base_bucket, base_prefix = split_s3_uri(manifest[0]["prefix"])
        return [(base_bucket, base_prefix + relative, relative) for relative in manifest[1:]]
    if data_type != "S3Prefix":
        raise ValueError(f"S3DataType {data_type} is not supported locally")
    return [(bucket, item["Key"], item["Key"][len(prefix):].lstrip("/") or Path(item["Key"]).name)
            for page in s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", [])]


def _fetch(bucket: str, key: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    get_file(bucket, key, path)


def get_file(bucket: str, key: str, path: Path) -> None:
    """One GetObject streamed to the file, in this thread: boto3's download_file starts and joins a thread pool
    for every file (and asks HeadObject first), which cost more than the job's small files themselves."""
    body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
    with open(path, "wb") as handle:
        shutil.copyfileobj(body, handle, _CHUNK)


def put_file(path: Path, bucket: str, key: str) -> None:
    """One PutObject from the file, in this thread (see get_file)."""
    with open(path, "rb") as handle:
        s3_client().put_object(Bucket=bucket, Key=key, Body=handle)


def fetch_code(location: str, sandbox: Path, isolated: bool) -> Path | None:
    """An s3:// code location, fetched as a container with network access and its role's credentials would;
    under network isolation the container has neither: None, and the toolkit's own attempt fails as it would."""
    if isolated or not location.startswith("s3://"):
        return None
    bucket, key = split_s3_uri(location)
    archive = sandbox / "fetched-code" / Path(key).name
    archive.parent.mkdir(parents=True, exist_ok=True)
    get_file(bucket, key, archive)
    return archive


def upload_dir(local: Path, uri: str) -> None:
    bucket, prefix = split_s3_uri(uri)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            key = f"{prefix.rstrip('/')}/{path.relative_to(local).as_posix()}"
            put_file(path, bucket, key)
