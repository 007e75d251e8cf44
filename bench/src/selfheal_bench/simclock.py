"""Simulated calendar time: the one clock a backtest (and the reliability storm) replays history on.

What reads the calendar: the product (functions/ and the shared layer: cooldowns, daily caps, monitor
windows, label delay, every ledger timestamp), each with `datetime.now(UTC)`, and the local cloud where it
stamps what AWS would (capture records and their hour folders, ground-truth hour folders: LocalCloud.calendar).
`simulated_time` points all of them at one SimulatedClock, which stands still until the caller moves it:
every decision of one moment reads the same time, so a cooldown that ends exactly at the next scheduled
monitor has ended, as on AWS, and a replay is the same every time.

Why not freezegun: it replaces `time.time`, `time.monotonic` and `datetime` process-wide, in every thread,
and so also the bounded waits that must keep real time (LocalCloud.wait_idle's deadline, the local cloud's
scaled Clock for Wait states and backoffs, botocore's retries, moto's engine); its ignore list would have to
name all of them. Patching the `datetime` name of the product modules that read it touches the product's
clock reads and nothing else. The modules are found, not listed: every module under functions/ or layers/
that imported `datetime`, once every function of the template has been imported.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from .localcloud import LocalCloud

PRODUCT_FOLDERS = ("functions", "layers")  # in the project folder


@dataclass
class SimulatedClock:
    """Calendar time as the caller sets it (UTC); it moves only forward."""

    now: datetime

    def advance_to(self, moment: datetime) -> None:
        if moment < self.now:
            raise ValueError(f"the simulated clock cannot go back from {self.now.isoformat()} to {moment.isoformat()}")
        self.now = moment


@contextlib.contextmanager
def simulated_time(cloud: LocalCloud, clock: SimulatedClock) -> Iterator[SimulatedClock]:
    """For the block, the product and the cloud's calendar read `clock`; nothing else does."""

    class Simulated(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Simulated:  # type: ignore[override]
            return cls.fromtimestamp(clock.now.timestamp(), tz)

    for spec in cloud.functions():  # import every handler (and what it imports) before looking
        cloud.router.module(spec.logical_id)
    saved = cloud.calendar
    with contextlib.ExitStack() as patches:
        for module in product_clock_readers(cloud.root):
            patches.enter_context(mock.patch.object(module, "datetime", Simulated))
        cloud.calendar = lambda: clock.now.astimezone(UTC)
        try:
            yield clock
        finally:
            cloud.calendar = saved


def product_clock_readers(root: Path) -> list[ModuleType]:
    """The loaded product modules (of the project at `root`) whose `datetime` is the standard one (so
    `datetime.now` reads the clock)."""
    folders = [root / folder for folder in PRODUCT_FOLDERS]
    return [module for module in list(sys.modules.values())
            if getattr(module, "datetime", None) is datetime and _in(getattr(module, "__file__", None), folders)]


def _in(file: str | None, folders: list[Path]) -> bool:
    return file is not None and any(Path(file).resolve().is_relative_to(folder) for folder in folders)
