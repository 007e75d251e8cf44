"""Each policy's replay in a process of its own, as many at once as the machine has cores.

The replays share nothing: each runs on a fresh local cloud, with its own simulated clock (simclock.py patches the
product modules' `datetime` process-wide) and its own job processes, so a process each is the isolation they need and
what lets them run side by side. A process is started fresh ("spawn"), never forked from this one: no module-level
state (clock patches, moto's backends, caches) crosses from one replay to another.

Each replay writes its lines to DIR/<policy>/backtest.log (everything its process prints: progress, handlers' output)
and its libraries' logs to DIR/<policy>/cloud/logs/; the lines are relayed here, prefixed with the policy, while it
runs. A replay that raises or whose process dies is that policy's failure, with the reason; the others go on.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

LOG = "backtest.log"
_RESULT = "replay-result.pickle"  # how the child hands its summary back (removed once read)
_POLL_SECONDS = 0.5
# Longest first, so the longest replay never waits for a free core: `always` trains on every batch, `never` once.
_LAUNCH_ORDER = ("always", "configured", "never")

Echo = Callable[[str], None]
# (scenario, policy, DIR/<policy>, prices, echo) -> the policy's summary; run in the child process
Target = Callable[[Any, str, Path, Any, Echo], dict[str, Any]]


@dataclass
class Outcome:
    """How one policy's replay ended: its summary, or why there is none."""

    policy: str
    seconds: float
    exit_code: int | None
    result: dict[str, Any] | None = None
    error: str | None = None

    def record(self, out: Path) -> dict[str, Any]:
        """The replay as backtest.json lists it (`replays`)."""
        found = {"seconds": round(self.seconds, 1), "exit_code": self.exit_code,
                 "log": str((out / self.policy / LOG).relative_to(out))}
        return found | ({"error": self.error} if self.error else {})


@dataclass
class _Child:
    policy: str
    folder: Path
    process: BaseProcess
    started: float = field(default_factory=time.perf_counter)
    offset: int = 0  # how much of its log has been relayed

    def relay(self, echo: Echo) -> None:
        """Echo the log's new complete lines."""
        log = self.folder / LOG
        if not log.exists():
            return
        with open(log, "rb") as text:
            text.seek(self.offset)
            chunk = text.read()
        complete = chunk[:chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode("utf-8", errors="replace").splitlines():
            echo(f"  [{self.policy}] {line}")

    def outcome(self) -> Outcome:
        seconds = time.perf_counter() - self.started
        code = self.process.exitcode
        handed = self.folder / _RESULT
        if not handed.exists():
            return Outcome(self.policy, seconds, code,
                           error=f"the replay's process ended with exit code {code} before it reported (see {LOG})")
        found = pickle.loads(handed.read_bytes())  # noqa: S301 - written by our own child process just now
        handed.unlink()
        return Outcome(self.policy, seconds, code, found.get("result"), found.get("error"))


def replay_policies(scenario: Any, out: Path, policies: list[str], prices: Any, echo: Echo,
                    target: Target | None = None, workers: int | None = None) -> dict[str, Outcome]:
    """Replay each policy in its own process, at most `workers` (the cores) at once; every outcome, by policy, in the
    order asked."""
    run = target or replay_policy
    slots = max(1, workers or os.cpu_count() or 1)
    waiting = sorted(policies, key=lambda name: _LAUNCH_ORDER.index(name) if name in _LAUNCH_ORDER else 0)
    context = get_context("spawn")
    running: list[_Child] = []
    outcomes: dict[str, Outcome] = {}
    while waiting or running:
        while waiting and len(running) < slots:
            policy = waiting.pop(0)
            folder = out / policy
            folder.mkdir(parents=True, exist_ok=True)
            (folder / LOG).write_bytes(b"")
            (folder / _RESULT).unlink(missing_ok=True)
            process = context.Process(target=_child, args=(run, scenario, policy, folder, prices),
                                      name=f"backtest-{policy}")
            process.start()
            running.append(_Child(policy, folder, process))
            echo(f"\npolicy {policy}: replaying in process {process.pid} (log: {folder / LOG})")
        time.sleep(_POLL_SECONDS)
        for child in list(running):
            child.relay(echo)
            if child.process.is_alive():
                continue
            child.process.join()
            child.relay(echo)
            running.remove(child)
            outcome = outcomes[child.policy] = child.outcome()
            echo(f"policy {child.policy}: " + (f"failed: {outcome.error}" if outcome.error else
                                               f"replayed in {outcome.seconds:.0f} s"))
    return {policy: outcomes[policy] for policy in policies}


def replay_policy(scenario: Any, policy: str, folder: Path, prices: Any, echo: Echo) -> dict[str, Any]:
    """One policy's replay on a fresh local cloud (the default target)."""
    from .backtest import Replay
    from .localcloud import LocalCloud

    return Replay(scenario, policy, folder, prices, echo).run(LocalCloud)


def _child(run: Target, scenario: Any, policy: str, folder: Path, prices: Any) -> None:
    """The replay's process: its output to its log, its summary (or its error) handed back in a file."""
    from selfheal.console import library_logs_to

    with open(folder / LOG, "ab", buffering=0) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        with library_logs_to(folder / "cloud" / "logs"):
            found: dict[str, Any] = {"result": run(scenario, policy, folder, prices, print)}
    except Exception as exc:  # the policy's failure, reported as such; the other replays go on
        traceback.print_exc()
        found = {"error": f"{type(exc).__name__}: {exc}"}
    handed = folder / _RESULT
    handed.with_suffix(".partial").write_bytes(pickle.dumps(found))
    handed.with_suffix(".partial").replace(handed)  # whole or absent: a process killed mid-write reported nothing
    sys.stdout.flush()
    sys.stderr.flush()
    if "error" in found:
        sys.exit(1)
