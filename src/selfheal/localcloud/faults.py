"""Faults the local cloud injects on purpose, each one AWS documents, under the error name AWS uses.

A fault names a target (e.g. "sagemaker:CreateTrainingJob", "job:training", "lambda:EvaluateGateFunction"),
a kind, and how many times it fires (None: every time). Tests and scenarios add them; the parts of the
local cloud that can fail ask `take(target)` at the point where AWS would fail.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    target: str
    kind: str
    times: int | None = 1
    fired: int = 0

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times


class Faults:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, target: str, kind: str, times: int | None = 1) -> Fault:
        fault = Fault(target, kind, times)
        with self._lock:
            self._faults.append(fault)
        return fault

    def take(self, target: str) -> Fault | None:
        """The first live fault for target, counted as fired; None when there is none."""
        with self._lock:
            for fault in self._faults:
                if fault.target == target and not fault.spent:
                    fault.fired += 1
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def fired(self) -> list[Fault]:
        return [fault for fault in self._faults if fault.fired]
