"""s3:// URIs: parse them once, join key parts without doubled or missing slashes."""

from __future__ import annotations

import re
from dataclasses import dataclass

from selfheal_shared.errors import InvalidS3Uri

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str = ""

    def __post_init__(self) -> None:
        if not _BUCKET.fullmatch(self.bucket):
            raise InvalidS3Uri(f"{self.bucket!r} is not a valid S3 bucket name")
        if len(self.key.encode("utf-8")) > _MAX_KEY_BYTES:
            raise InvalidS3Uri(f"S3 key longer than {_MAX_KEY_BYTES} bytes")

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise InvalidS3Uri(f"{uri!r} is not an s3:// URI")
        bucket, _, key = uri[len("s3://") :].partition("/")
        return cls(bucket, key)

    def join(self, *parts: str) -> S3Uri:
        """Append key parts with exactly one slash between them ("a/" + "/b" -> "a/b")."""
        pieces = [self.key.rstrip("/")] if self.key else []
        pieces += [part.strip("/") for part in parts if part.strip("/")]
        return S3Uri(self.bucket, "/".join(pieces))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def s3_uri(bucket: str, *parts: str) -> str:
    """`s3_uri("b", "artifacts", "churn")` -> "s3://b/artifacts/churn"."""
    return str(S3Uri(bucket).join(*parts))
