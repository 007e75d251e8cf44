"""One model's endpoint under faults, end to end: transient faults on every layer are retried away;
permanent ones fail the run cleanly; every kind of failed rollout leaves the previous model serving
while a client keeps sending traffic; duplicate schedule and approval events start nothing twice.

The story runs once for this module (it is a sequence of runs on one endpoint); each test checks one
of its promises. What holds during a rollout whose new model errors on every request: requests that
the canary takes while it bakes may get a server error, until the 5xx alarm rolls it back; every
request the previous model takes is answered, and so is every request after the rollback."""

from __future__ import annotations

from typing import Any

import pytest
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.reliability import FAILURES, SLOW_FAILURES, Inbox, Story, serving_story, sizes

RUNS_IN_SIZE = [s for s in FAILURES if sizes().slow_faults or s.name not in SLOW_FAILURES]
FAILED = [s.name for s in RUNS_IN_SIZE if s.expect == "failed"]
ROLLED_BACK = [s.name for s in RUNS_IN_SIZE if s.expect == "rolled_back"]


# One worker runs the whole module, so its one story runs once (pytest -n auto --dist loadgroup).
pytestmark = pytest.mark.xdist_group("serving-story")


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> tuple[Story, list[dict[str, Any]]]:
    """The story and every notification it raised. (The cloud stops before the tests run: one local cloud
    at a time per process.)"""
    folder = tmp_path_factory.mktemp("story")
    with LocalCloud(folder / "cloud") as cloud:
        inbox = Inbox(cloud)
        return serving_story(cloud, folder / "data", sizes()), inbox.read()


def finished(notifications: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    return [n for n in notifications if n["event"] == "run.finished" and n["run_id"] == run_id]


def test_transient_faults_on_every_layer_are_retried_and_the_model_deploys(story):
    # Given throttling, capacity and service errors on ingest, SageMaker, Lambda, DynamoDB, S3 and hosting
    step = story[0].step("transient")
    # When the first dataset is uploaded; Then each fault struck and was absorbed, and the model serves
    assert [(f.injection.target, f.fired) for f in step.faults if not f.fired] == []
    assert step.problems() == []
    assert (step.run["status"], step.run["decision"]) == ("SUCCEEDED", "deployed")


@pytest.mark.parametrize("name", FAILED)
def test_a_permanent_failure_fails_the_run_with_its_cause_notified_and_the_old_model_serving(story, name):
    result, notifications = story
    step = result.step(name)
    # Then the run is FAILED with the cause in the ledger, the endpoint and the champion are the previous
    # model's, and every request sent meanwhile was answered
    assert step.problems() == []
    assert step.ledger_run["status"] == "FAILED" and step.ledger_run["cause"]
    # And the operators were told, once, with the cause
    (note,) = finished(notifications, step.run["run_id"])
    assert note["decision"] == "failed" and note["cause"] == step.ledger_run["cause"]


@pytest.mark.parametrize("name", ROLLED_BACK)
def test_a_failed_rollout_rolls_back_and_the_old_model_answers_throughout(story, name):
    result, notifications = story
    step = result.step(name)
    # Then the rollout is recorded as rolled back with its reason, the previous model still serves and is
    # still the champion, and the client's requests were answered (see the module's note for a failing canary)
    assert step.problems() == []
    (entry,) = [h for h in step.history if h["run_id"] == step.run["run_id"]]
    assert entry["outcome"] == "rolled_back" and entry["reason"]
    assert step.answers and any(a.status == 200 for a in step.answers)
    assert any(n["event"] == "deploy.rolled_back" and n.get("run_id") == step.run["run_id"] for n in notifications)


def test_bad_inference_payloads_get_client_errors_from_the_real_endpoint(story):
    # When empty, oversized, misshapen and non-numeric requests reach the serving model
    payloads = story[0].payloads
    # Then each gets a 4xx (SageMaker's ModelError with the container's status), never a 5xx, and the
    # endpoint answers a good request afterwards
    assert [(p.name, p.observed) for p in payloads if p.problem] == []
    assert len(payloads) >= 12


def test_the_monitor_schedule_firing_twice_starts_one_retrain(story):
    # When EventBridge Scheduler delivers the hourly monitor twice, on drifted traffic, with labelled data
    # the champion has not seen waiting
    duplicate = story[0].duplicate("monitor schedule")
    # Then one drift run retrains and deploys (through an UpdateEndpoint refused once for the quota), and
    # traffic is answered
    assert duplicate.problems() == []
    assert duplicate.outcome == "SUCCEEDED deployed"


def test_an_approval_event_delivered_three_times_deploys_the_package_once(story):
    # When the approval of a package is delivered three times, during and after its deployment
    duplicate = story[0].duplicate("approval event")
    # Then one DeployPipeline execution deployed it, and traffic is answered throughout
    assert duplicate.problems() == []
    assert duplicate.outcome == "deployed"
