"""The local cloud's one notion of time.

AWS-sized durations (Wait states, Retry backoffs, baking periods, deployment timeouts, a fleet's
provisioning) pass `scale` times faster than real time, so production-sized settings run in seconds.
Real work done here (loading a model into a new fleet) cannot be sped up: while any is in flight the
clock runs at real speed, so a scaled wait never budgets less wall time than the work it waits for,
and a loaded machine cannot time out a deployment AWS would complete. Work that outlasts
`grace_seconds` of wall time is hung, not slow: the clock stops waiting for it, so a genuinely hung
deployment still times out.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

_TICK = 0.05  # wall seconds between looks at the clock while sleeping: the rate may change meanwhile


class Clock:
    def __init__(self, scale: float, grace_seconds: float = 60.0) -> None:
        self.scale = scale
        self._grace = grace_seconds
        self._lock = threading.Lock()
        self._seconds = 0.0  # simulated seconds since the clock started
        self._mark = time.monotonic()
        self._work: dict[int, float] = {}  # real work in flight -> when it started (wall)
        self._next_id = 0

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        with self._lock:
            return self._advance()

    def _advance(self) -> float:
        wall = time.monotonic()
        self._seconds += (wall - self._mark) / self._rate(wall)
        self._mark = wall
        return self._seconds

    def _rate(self, wall: float) -> float:
        """Wall seconds per simulated second: real speed while real (not hung) work is in flight."""
        return 1.0 if any(wall - started < self._grace for started in self._work.values()) else self.scale

    def sleep(self, seconds: float, wake: threading.Event | None = None) -> None:
        """Wait `seconds` of simulated time (or until `wake` is set)."""
        deadline = self.now() + seconds
        while (remaining := deadline - self.now()) > 0:
            with self._lock:
                rate = self._rate(time.monotonic())
            pause = min(_TICK, remaining * rate)
            if wake is not None:
                if wake.wait(pause):
                    return
            else:
                time.sleep(pause)

    @contextlib.contextmanager
    def real_work(self) -> Iterator[None]:
        """Mark real work in flight: simulated time runs at real speed until it ends (or is hung)."""
        with self._lock:
            self._advance()
            key, self._next_id = self._next_id, self._next_id + 1
            self._work[key] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._advance()
                del self._work[key]
