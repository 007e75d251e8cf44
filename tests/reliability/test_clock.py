"""The local cloud's one clock: AWS-sized waits pass scaled, but never faster than real work in flight,
so a loaded machine cannot time out what AWS would complete, and hung work still times out."""

from __future__ import annotations

import threading
import time

from selfheal_bench.fixtures.hosting import ENDPOINT, SLOW_LOAD_SECONDS
from selfheal_bench.localcloud.clock import Clock


def elapsed(clock: Clock, wall_seconds: float) -> float:
    start = clock.now()
    time.sleep(wall_seconds)
    return clock.now() - start


def test_simulated_time_is_scaled_except_while_real_work_is_in_flight():
    clock = Clock(scale=0.001)
    # Given no real work: 50 ms of wall time are 50 simulated seconds
    assert 40 <= elapsed(clock, 0.05) <= 200
    # When real work is in flight: time passes at real speed
    with clock.real_work():
        assert 0.04 <= elapsed(clock, 0.05) <= 1.0
    # and once it ends, scaled again
    assert elapsed(clock, 0.05) >= 40


def test_work_that_outlasts_the_grace_period_is_hung_and_stops_slowing_the_clock():
    clock = Clock(scale=0.001, grace_seconds=0.1)
    release = threading.Event()

    def hang() -> None:
        with clock.real_work():
            release.wait(5)

    worker = threading.Thread(target=hang)
    worker.start()
    try:
        # Given real work in flight: real speed
        assert elapsed(clock, 0.05) <= 1.0
        # When it has run past the grace period; Then the clock no longer waits for it
        time.sleep(0.1)
        assert elapsed(clock, 0.05) >= 40
    finally:
        release.set()
        worker.join()


def test_a_fleet_slower_to_load_than_the_scaled_poll_budget_is_still_waited_for(hosting):
    # Given a model whose container takes longer to load than a deploy's polls last in wall time,
    # as on a loaded machine: 50 polls of 30 simulated seconds are 1.5 s at this scale
    polls, poll_seconds = 50, 30
    assert polls * poll_seconds * hosting.clock.scale < SLOW_LOAD_SECONDS
    heavy = hosting.config("slow", model="heavy")
    hosting.service.create_endpoint({"EndpointName": ENDPOINT, "EndpointConfigName": heavy})
    # When a deploy polls as DeployPipeline does (Wait, then DescribeEndpoint), within its budget
    used = 0
    while used < polls and hosting.status()["EndpointStatus"] == "Creating":
        hosting.clock.sleep(poll_seconds)
        used += 1
    # Then the endpoint came up before the budget ran out, as it would on AWS
    assert hosting.status()["EndpointStatus"] == "InService" and used < polls
