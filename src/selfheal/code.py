"""The job code in ml/, as published to s3://<bucket>/code/<version>/ for SageMaker to run.

The version is a content hash of the scripts, so the code version a run records names exactly the code
it ran. Processing jobs read the .py files; training (script mode) reads sourcedir.tar.gz. The deploy
command and the local cloud both publish through here.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

CODE_PREFIX = "code"
SOURCEDIR = "sourcedir.tar.gz"


class CodeError(ValueError):
    """ml/ cannot be published as it is."""


def code_files(ml_dir: Path) -> list[Path]:
    files = sorted(p for p in ml_dir.glob("*.py") if p.is_file())
    if not files:
        raise CodeError(f"no job scripts (*.py) in {ml_dir}")
    return files


def code_version(ml_dir: Path) -> str:
    """Content hash of ml/*.py: names and bytes, in name order, so it is the same on any machine."""
    digest = hashlib.sha256()
    for path in code_files(ml_dir):
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:16]


def sourcedir_tarball(ml_dir: Path) -> bytes:
    """sourcedir.tar.gz for script mode: the scripts at the archive root, byte-for-byte reproducible."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in code_files(ml_dir):
            content = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)


def code_keys(version: str, ml_dir: Path) -> list[str]:
    prefix = f"{CODE_PREFIX}/{version}"
    return [f"{prefix}/{p.name}" for p in code_files(ml_dir)] + [f"{prefix}/{SOURCEDIR}"]


def publish_code(s3: Any, bucket: str, version: str, ml_dir: Path) -> list[str]:
    """Upload ml/*.py and sourcedir.tar.gz under code/<version>/; returns the S3 URIs written."""
    bodies = {f"{CODE_PREFIX}/{version}/{p.name}": p.read_bytes() for p in code_files(ml_dir)}
    bodies[f"{CODE_PREFIX}/{version}/{SOURCEDIR}"] = sourcedir_tarball(ml_dir)
    for key, body in bodies.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    return [f"s3://{bucket}/{key}" for key in bodies]
