"""The SAM project a command works on: the folder that holds template.yaml.

Found as `sam` finds it, from the working directory (here: or any folder above it). When the command
runs from a folder outside any project, the project selfheal was installed from in editable mode (pip
records it, PEP 610) is used, so `make setup`'s .venv/bin/selfheal works from anywhere. Nothing else is
guessed: an installed wheel run outside a project is refused with a clear message.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

TEMPLATE = "template.yaml"


class ProjectNotFound(Exception):
    """No template.yaml here or above, and no editable install to fall back on: bad input (exit 2)."""


def find_project(start: Path | None = None) -> Path:
    """The project folder, absolute."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / TEMPLATE).is_file():
            return folder
    installed = _editable_source()
    if installed is not None and (installed / TEMPLATE).is_file():
        return installed
    raise ProjectNotFound(f"no {TEMPLATE} in {here} or any folder above it: run selfheal from your SAM "
                          "project's folder (the one holding template.yaml)")


def _editable_source() -> Path | None:
    """The folder `pip install -e` installed selfheal from, if it was."""
    try:
        text = metadata.distribution("selfheal").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    record = json.loads(text) if text else {}
    if not record.get("dir_info", {}).get("editable"):
        return None
    url = urlparse(record.get("url", ""))
    return Path(unquote(url.path)) if url.scheme == "file" else None
