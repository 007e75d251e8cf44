"""The job code in ml/, as published to s3://<bucket>/code/<version>/ for SageMaker to run.

The version is a hash of the files' names and contents, so a run's recorded code version names exactly
the scripts it ran. Processing jobs read the .py files; training (script mode) reads sourcedir.tar.gz.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

ML_DIR = Path(__file__).resolve().parents[2] / "ml"


def code_files(ml_dir: Path = ML_DIR) -> list[Path]:
    return sorted(path for path in ml_dir.glob("*.py") if path.is_file())


def code_version(ml_dir: Path = ML_DIR) -> str:
    digest = hashlib.sha256()
    for path in code_files(ml_dir):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def sourcedir_tarball(ml_dir: Path = ML_DIR) -> bytes:
    """A reproducible tarball (fixed mtimes and owners): the same code gives the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=9) as tar:
        for path in code_files(ml_dir):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish_code(s3: Any, bucket: str, version: str, ml_dir: Path = ML_DIR) -> str:
    """Upload ml/ under code/<version>/; returns its S3 URI."""
    prefix = f"code/{version}"
    for path in code_files(ml_dir):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key=f"{prefix}/sourcedir.tar.gz", Body=sourcedir_tarball(ml_dir))
    return f"s3://{bucket}/{prefix}"
