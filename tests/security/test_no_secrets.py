"""No secret in the repository: every file git tracks, or would track (new and not ignored), is scanned
for AWS keys, private keys, service tokens and high-entropy values given to secret-looking names."""

from __future__ import annotations

import math
import re
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws.{0,20}secret.{0,20}['\"=:\s][A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "JSON web token": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
# A value given to a secret-looking name: flagged when it looks random (a real token), not a word.
ASSIGNED = re.compile(r"(?i)(?:secret|token|passw(?:or)?d|api_?key|private_?key|credentials?)\w*['\"]?\s*[:=]\s*"
                      r"['\"]([^'\"\s]{16,})['\"]")
MIN_ENTROPY = 3.5  # bits per character: random base64/hex tokens are above it, names and words below
SECRET_FILES = re.compile(r"(?:^|/)(?:\.env|id_[rd]sa|id_ecdsa|id_ed25519|credentials)$|\.(?:pem|key|p12|pfx|jks)$")
# AWS's own documented example credentials, which are safe by design. The local cloud's fake
# credentials ("local", "testing") are too short to look like secrets and need no entry.
ALLOWED = {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}


def files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
    return sorted({name for name in listed.decode().split("\0") if name and (ROOT / name).is_file()})


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def findings(name: str, text: str) -> list[str]:
    found = [f"{name}: {kind}" for kind, pattern in PATTERNS.items()
             for match in pattern.finditer(text) if match.group(0) not in ALLOWED and
             not any(allowed in match.group(0) for allowed in ALLOWED)]
    found += [f"{name}: high-entropy value of a secret-looking name" for match in ASSIGNED.finditer(text)
              if looks_random(match.group(1)) and match.group(1) not in ALLOWED]
    return found


def looks_random(value: str) -> bool:
    """Letters and digits mixed, with high entropy: a token, not a name like "x-amz-security-token"."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value) and entropy(value) >= MIN_ENTROPY


def test_the_scanner_finds_what_it_looks_for():
    # Given made-up secrets of each kind (assembled here, so this file holds none)
    half = "k9Qf2LmX7pR4vT1wZ8sB"
    samples = {
        "AWS access key id": "AKIA" + "Q4ZR7NWX2J5KB3TD",
        "AWS secret access key": "aws_secret_access_key = " + half + half[::-1],
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "GitHub token": "ghp_" + half + half[:16],
        "high-entropy value of a secret-looking name": "api_token = '" + half + "'",
    }
    for kind, sample in samples.items():
        assert findings("sample", sample) == [f"sample: {kind}"], kind
    # and not the fake local credentials, AWS's documented examples, or ordinary settings
    harmless = ['"AWS_SECRET_ACCESS_KEY": "local"', "AKIAIOSFODNN7EXAMPLE", 'token_header = "x-amz-security-token"']
    for text in harmless:
        assert findings("sample", text) == [], text


def test_no_file_in_the_repository_holds_a_secret():
    # Given every file git tracks or would track
    names = files()
    assert len(names) > 50
    # Then none is a key or credentials file, and none holds a secret
    assert [name for name in names if SECRET_FILES.search(name)] == []
    found = []
    for name in names:
        data = (ROOT / name).read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary (images, parquet): no text secrets
        found += findings(name, data.decode("utf-8", errors="replace"))
    assert found == []
