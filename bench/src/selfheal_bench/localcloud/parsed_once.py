"""What the local cloud parses once per process instead of again for every cloud, session and execution: a pure saving
of CPU, since what is parsed is the same text each time and nothing parsed is changed by its users.

- moto's Step Functions engine parses a definition with its ANTLR grammar when the state machine is created and again
  when each execution starts (0.1-0.3 s of CPU each for our state machines). The parse tree depends on the text alone,
  so it is kept per text and only the evaluation components are built afresh from it for each execution, as moto
  builds them. A definition that does not parse is not kept: it fails again, with the same error, every time.
- botocore reads its service models and endpoint rules (JSON files of several MB) once per session, and the local
  cloud, moto and each Lambda invocation make sessions of their own: one loader, whose cache the sessions share.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import botocore.loaders
import botocore.session
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

_TREES: dict[str, Any] = {}
_LOCK = threading.Lock()


def patch_parsers() -> Callable[[], None]:
    """Install the kept parse trees in moto's parser and the shared loader in botocore; returns the undo (what was
    parsed stays, for the next cloud)."""
    original_parse = AmazonStateLanguageParser.__dict__["parse"]
    original_loader = botocore.session.create_loader

    def parse(definition: str) -> tuple[Any, Any]:
        with _LOCK:
            tree = _TREES.get(definition)
        if tree is None:
            program, tree = original_parse.__func__(definition)  # raises for a definition that does not parse
            with _LOCK:
                _TREES[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    botocore.session.create_loader = _shared_loader

    def undo() -> None:
        AmazonStateLanguageParser.parse = original_parse  # type: ignore[method-assign]
        botocore.session.create_loader = original_loader

    return undo


class _SearchPaths(list):
    """boto3 appends its own data folder to the loader's search paths at every new Session: once is enough."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@functools.cache
def _shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
    loader = botocore.loaders.create_loader(search_path_string)
    loader._search_paths = _SearchPaths(loader.search_paths)  # noqa: SLF001 - the list boto3 appends to
    return loader
