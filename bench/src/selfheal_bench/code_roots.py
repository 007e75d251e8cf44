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


def import_from(code_dir: Path, file: str, module_name: str, isolated: bool = False) -> ModuleType:
    """code_dir/file imported under `module_name`, with code_dir on the path while it loads (its siblings).
    `isolated`: its siblings are imported afresh from code_dir and forgotten afterwards, so a job script of
    another checkout (or the tests' own imports of ml/) cannot lend it theirs."""
    path = code_dir / file
    siblings = {p.stem for p in code_dir.glob("*.py")} if isolated else set()
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name in siblings}
    sys.path.insert(0, str(code_dir))
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise FileNotFoundError(path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses and pickling look their module up by name
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(code_dir))
        for name in siblings:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def code_roots(project: Path) -> list[Path]:
    """ml/ (the containers' /opt/ml/code) and each functions/<name>/ (a Lambda code root)."""
    functions = sorted(folder for folder in (project / "functions").iterdir() if (folder / "app.py").is_file())
    return [project / "ml", *functions]


def add_code_roots(project: Path) -> None:
    """Put every code root on the path for in-process imports; their module names are distinct across roots."""
    for folder in code_roots(project):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
