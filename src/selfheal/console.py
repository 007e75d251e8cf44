"""What reaches the terminal: selfheal's own lines, never a library's internals.

moto's Step Functions engine logs every failed state with its whole input through `logging`, and
botocore warns through `warnings`; with no handler configured Python prints both to stderr. While a
command runs they go to a file under the local cloud's logs/ instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

LIBRARY_LOG = "libraries.log"


@contextlib.contextmanager
def library_logs_to(folder: Path) -> Iterator[Path]:
    """Route every `logging` record and warning to folder/libraries.log while the block runs."""
    path = folder / LIBRARY_LOG
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()
