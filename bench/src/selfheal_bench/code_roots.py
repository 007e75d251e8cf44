"""Where the product's code sits on the import path, as on AWS: the one place the bench puts it there.

Lambda runs a function with its folder (CodeUri) as the code root, so a handler imports its siblings by name
(`from ingest import ...`); the shared layer is on the path as Lambda has a layer's python/ folder (the bench
installs selfheal_shared from layers/shared). A SageMaker container runs a job script from /opt/ml/code beside
its siblings (`from features import ...`). The local cloud loads handlers through `import_from`; tests import
the same modules by the same names once `add_code_roots` has run (the pytest plugin runs it at start-up).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_from(code_dir: Path, file: str, module_name: str) -> ModuleType:
    """code_dir/file imported under `module_name`, with code_dir on the path while it loads (its siblings)."""
    path = code_dir / file
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(code_dir))
    return module


def code_roots(project: Path) -> list[Path]:
    """ml/ (the containers' /opt/ml/code) and each functions/<name>/ (a Lambda code root)."""
    functions = sorted(folder for folder in (project / "functions").iterdir() if (folder / "app.py").is_file())
    return [project / "ml", *functions]


def add_code_roots(project: Path) -> None:
    """Put every code root on the path for in-process imports; their module names are distinct across roots."""
    for folder in code_roots(project):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
