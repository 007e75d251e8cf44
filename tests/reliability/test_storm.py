"""The retraining loop under a storm of violations for hours of simulated time: it retrains as often as
its guard rails allow, and never more."""

from __future__ import annotations

import math

from selfheal_bench.reliability import STORM_MODEL, STORM_RETRAIN, storm
from selfheal_bench.report import ledger_items


def test_a_storm_of_violations_retrains_within_the_cooldown_and_the_daily_cap(cloud, inbox, tmp_path, size):
    # Given a model that retrains on a confirmed quality drop at most every 60 minutes and 3 times in 24 hours
    # When the monitor reports drift and labels confirm the drop every few minutes for hours
    result = storm(cloud, tmp_path, size.storm_hours, size.storm_tick_minutes)

    # Then consecutive retrains are a cooldown apart, no 24 hours hold more than the cap, and every
    # report that did not retrain was held back by one of them
    assert result.problems() == []
    # And so the loop retrained exactly as often as allowed: the cap, on each day the storm touched
    assert len(result.retrains) == STORM_RETRAIN["daily_cap"] * math.ceil(size.storm_hours / 24)
    assert result.runs_started == len(result.retrains)
    assert {t.suppressed for t in result.ticks if t.action != "retrain"} == {"cooldown", "daily_cap"}
    # And every decision, each suppression with its reason, is in the ledger and was notified
    monitors = ledger_items(cloud, STORM_MODEL, "MONITOR#")
    assert len(monitors) == len(result.ticks)
    assert all(m["action"] == "retrain" or m["suppressed"].replace("_", " ") in m["reason"] for m in monitors)
    notes = [n for n in inbox.read() if n["event"].startswith("monitor.")]
    assert len(notes) == len(result.ticks)
