"""docs/aws-contract.md holds the local cloud to AWS only if every test a row names exists: each
`tests/<path>.py::<name>` (or `::<name>`, in the row's last file) must be a test function in that file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "aws-contract.md"
REFERENCE = re.compile(r"(tests/[\w/]+\.py)?::(\w+)")


def test_every_test_the_contract_names_exists():
    missing = []
    for line in CONTRACT.read_text().splitlines():
        if not line.startswith("| ") or line.startswith(("| #", "| ---")):
            continue
        test_column = line.rstrip(" |").rsplit(" | ", 1)[-1]
        path = None
        for file, name in REFERENCE.findall(test_column):
            path = ROOT / file if file else path
            if path is None or not re.search(rf"^def {name}\(", path.read_text() if path.exists() else "", re.M):
                missing.append(f"{file or path}::{name}")
    assert missing == []
