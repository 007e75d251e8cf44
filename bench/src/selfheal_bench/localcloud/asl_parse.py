"""moto's Step Functions engine parses a definition with its ANTLR grammar when the state machine is created and again
when each execution starts: about half a second of CPU each time for our state machines, the largest cost of starting
a local cloud and of every execution. The parse tree depends on the definition's text alone, so it is kept per text
(for this process) and only the evaluation components are built afresh from it for each execution, as moto builds
them. A definition that does not parse is not kept: it fails again, with the same error, every time."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

_TREES: dict[str, Any] = {}
_LOCK = threading.Lock()


def patch_parser() -> Callable[[], None]:
    """Install the kept parse trees in moto's parser; returns the undo (the trees stay, for the next cloud)."""
    original = AmazonStateLanguageParser.__dict__["parse"]

    def parse(definition: str) -> tuple[Any, Any]:
        with _LOCK:
            tree = _TREES.get(definition)
        if tree is None:
            program, tree = original.__func__(definition)  # raises for a definition that does not parse
            with _LOCK:
                _TREES[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]

    def undo() -> None:
        AmazonStateLanguageParser.parse = original  # type: ignore[method-assign]

    return undo
