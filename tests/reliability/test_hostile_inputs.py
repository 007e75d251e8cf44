"""Hostile and broken input, end to end on the local cloud: each upload is quarantined with its reason
and the original kept byte for byte, each event that is not an upload is refused or ignored, and
nothing else moves. (The validator's own cases and properties: tests/functions/test_ingest*.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from selfheal_bench.localcloud import LocalCloud
from selfheal_bench.reliability import Catalogue, Inbox, hostile_events, hostile_upload_catalogue, hostile_uploads
from selfheal_bench.reliability.hostile import OUTSIDE

UPLOADS = [upload.name for upload in hostile_upload_catalogue()] + [OUTSIDE]


# One worker runs the whole module, so its one story runs once (pytest -n auto --dist loadgroup).
pytestmark = pytest.mark.xdist_group("hostile-uploads")


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalogue, list[dict[str, Any]]]:
    """Every hostile upload at once into one cloud, beside a good dataset recorded before them. (The cloud
    stops before the tests run: one local cloud at a time per process.)"""
    folder = tmp_path_factory.mktemp("hostile")
    with LocalCloud(folder / "cloud") as cloud:
        inbox = Inbox(cloud)
        return hostile_uploads(cloud, folder / "data"), inbox.read()


@pytest.mark.parametrize("name", UPLOADS)
def test_a_hostile_upload_is_quarantined_with_its_reason_and_the_original_kept(uploaded, name):
    # Given the upload among the others; Then it met the fate it should, for the reason it should
    (outcome,) = [o for o in uploaded[0].outcomes if o.name == name]
    assert outcome.problem is None, f"{outcome.observed}: {outcome.problem}"


def test_nothing_else_moves_and_every_quarantine_is_notified(uploaded):
    catalogue, notifications = uploaded
    # Then the good dataset is as it was, no run started, nothing is left in incoming/ or dead-lettered
    assert catalogue.untouched == []
    # And each quarantined upload raised exactly one alert
    quarantined = [o for o in catalogue.outcomes if o.expected.startswith("quarantined")]
    alerts = [n for n in notifications if n["event"] == "upload.quarantined"]
    assert len(alerts) == len(quarantined)


def test_events_that_are_not_uploads_are_refused_or_ignored_and_touch_nothing(cloud):
    # When IngestFunction gets events of another bucket, malformed ones, and a lookalike is put on the bus
    outcomes = hostile_events(cloud)
    # Then each is ignored with its reason or refused with a validation error, and the ledger has no model items
    assert [(o.name, o.observed) for o in outcomes if o.problem] == []
    assert {o.observed for o in outcomes} == {"ignored", "ValidationError", "delivered 0 time(s)"}
