"""The burst: uploads across five models within seconds, a fifth of them redelivered."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..datagen import churn_frame
from ..localcloud import LocalCloud
from ..report import ledger_items
from .core import IDLE_TIMEOUT, STORY_CONFIG, Injection, injected

# -- the burst ------------------------------------------------------------------------------------------------


BURST_MODELS = tuple(f"burst-{letter}" for letter in "abcde")
BURST_ROWS = 100
BURST_CONFIG = STORY_CONFIG | {
    # Two uploads make a run; the rest arrive while it is in flight, and wait for it to end.
    "trigger": {"mode": "min_new_rows", "min_new_rows": 2 * BURST_ROWS},
    "training": {"window": {"mode": "all"}},
    "approval": "manual",  # registered, not deployed: the burst is about ingest and the one-run lock
}


@dataclass
class Burst:
    deliveries: int
    redeliveries: int
    uploads: list[str]  # distinct keys
    recorded: Counter[str]  # key -> DATASET items
    quarantined: Counter[str]  # key -> QUARANTINE items
    runs: dict[str, list[tuple[str, str]]]  # model -> [(started_at, ended_at)] from the ledger
    dead_letters: int
    seconds: float

    @property
    def lost(self) -> list[str]:
        return [key for key in self.uploads if not self.recorded[key] and not self.quarantined[key]]

    @property
    def doubled(self) -> list[str]:
        return [key for key in self.uploads if self.recorded[key] + self.quarantined[key] > 1]

    def in_flight_max(self, model: str) -> int:
        """The most runs of the model in flight at once (a run holds the lock from start to its record)."""
        edges = sorted([(start, 1) for start, _ in self.runs[model]] + [(end, -1) for _, end in self.runs[model]])
        most = current = 0
        for _, step in edges:  # an end sorts before a start at the same instant
            current += step
            most = max(most, current)
        return most

    def problems(self) -> list[str]:
        found = [f"lost: {key}" for key in self.lost] + [f"recorded twice: {key}" for key in self.doubled]
        found += [f"{model}: {self.in_flight_max(model)} runs in flight at once" for model in self.runs
                  if self.in_flight_max(model) > 1]
        if self.dead_letters:
            found.append(f"{self.dead_letters} deliveries ended in the dead-letter queue")
        return found

    def summary(self) -> dict[str, Any]:
        return {"deliveries": self.deliveries, "redeliveries": self.redeliveries, "distinct_uploads": len(self.uploads),
                "datasets": sum(self.recorded.values()), "quarantined": sum(self.quarantined.values()),
                "lost": len(self.lost), "recorded_twice": len(self.doubled), "dead_letters": self.dead_letters,
                "runs": sum(len(r) for r in self.runs.values()),
                "in_flight_max": {model: self.in_flight_max(model) for model in self.runs},
                "seconds": round(self.seconds, 1)}


def burst(cloud: LocalCloud, deliveries: int, trains: bool = True, seed: int = 5) -> Burst:
    """`deliveries` upload events across five models within seconds, a fifth of them redeliveries of
    earlier ones (EventBridge delivers at least once); every eighth upload is broken. Without `trains`, runs
    end at Preprocess (an injected failure): they take and release the lock while uploads still arrive,
    which is what is under test, in seconds instead of minutes of training."""
    cut_short = () if trains else (Injection("job:processing", "algorithm", None),)
    with injected(cloud, cut_short):
        return _burst(cloud, deliveries, random.Random(seed))  # noqa: S311 - which events to redeliver; not secret


def _burst(cloud: LocalCloud, deliveries: int, rng: random.Random) -> Burst:
    for model in BURST_MODELS:
        cloud.put_model_config(model, BURST_CONFIG)
    good = churn_frame(BURST_ROWS, seed=5).to_csv(index=False).encode()
    broken = good.split(b"\n", 1)[0] + b"\n"  # header only
    s3 = cloud.client("s3")
    redeliveries = deliveries // 5
    keys: list[str] = []
    redelivered = 0

    def redeliver_one() -> None:
        uploads = [i for i, d in enumerate(cloud.delivered) if "IngestFunction" in d.target["Arn"]]
        cloud.redeliver(rng.choice(uploads))

    started = time.monotonic()
    for index in range(deliveries - redeliveries):
        key = f"incoming/{BURST_MODELS[index % len(BURST_MODELS)]}/part-{index:04d}.csv"
        s3.put_object(Bucket=cloud.bucket, Key=key, Body=broken if index % 8 == 7 else good)
        keys.append(key)
        if index % 4 == 3 and redelivered < redeliveries:  # redeliveries come amid the uploads
            redeliver_one()
            redelivered += 1
    for _ in range(redeliveries - redelivered):
        redeliver_one()
    cloud.wait_idle(IDLE_TIMEOUT)
    recorded: Counter[str] = Counter()
    quarantined: Counter[str] = Counter()
    runs: dict[str, list[tuple[str, str]]] = {}
    for model in BURST_MODELS:
        recorded.update(item["key"] for item in ledger_items(cloud, model, "DATASET#"))
        quarantined.update(item["key"] for item in ledger_items(cloud, model, "QUARANTINE#"))
        runs[model] = [(run["started_at"], run.get("ended_at", "in flight"))
                       for run in ledger_items(cloud, model, "RUN#")]
    return Burst(deliveries, redeliveries, keys, recorded, quarantined, runs, len(cloud.dead_letters),
                 time.monotonic() - started)


