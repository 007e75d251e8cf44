"""The --out folder of a command: resolved once, started clean, never someone else's files deleted.

A folder selfheal writes carries a marker file. Running again into it clears only what selfheal
wrote there (the local cloud's folder and the reports); a folder without the marker that holds
anything is refused, so a typo in --out cannot wipe a user's files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MARKER = ".selfheal-output"
WRITTEN = ("cloud", "report.json", "report.html")


class OutFolderError(ValueError):
    """The --out path cannot be used; the message says why and what to do."""


def prepare_out(path: Path, written: tuple[str, ...] = WRITTEN) -> Path:
    """The absolute folder, ready for a new run: created, or cleared of a previous run's output (`written`:
    what the command writes there)."""
    out = path.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise OutFolderError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise OutFolderError(f"--out {out} is not empty and was not written by selfheal: "
                             "choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    for name in written:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    (out / MARKER).write_text("written by selfheal: running again into this folder replaces "
                              f"{', '.join(written)}\n", encoding="utf-8")
    return out
