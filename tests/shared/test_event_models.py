"""Event and payload models: every sample event parses; junk raises only pydantic's ValidationError."""

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from selfheal_shared.events import GateRequest, RecordRunRequest, RegisterRequest
from selfheal_shared.s3_events import S3ObjectCreatedEvent
from selfheal_shared.serving_events import (
    DeployRequest,
    ModelPackageStateChangeEvent,
    MonitorRequest,
    RecordDeploymentRequest,
    SmokeTestRequest,
    ViolationRequest,
)

MODELS = {"ingest": S3ObjectCreatedEvent, "evaluate_gate": GateRequest, "register_model": RegisterRequest,
          "record_run": RecordRunRequest, "approval": ModelPackageStateChangeEvent, "prepare_deploy": DeployRequest,
          "smoke_test": SmokeTestRequest, "record_deployment": RecordDeploymentRequest,
          "prepare_monitor": MonitorRequest, "violation": ViolationRequest}
EVENTS = Path(__file__).resolve().parents[2] / "events"
SAMPLES = sorted(path for function in MODELS for path in (EVENTS / function).glob("*.json"))


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_event_parses_into_its_model(path):
    MODELS[path.parent.name].model_validate(json.loads(path.read_text()))


def test_the_s3_event_exposes_bucket_key_version_and_size():
    event = S3ObjectCreatedEvent.model_validate(json.loads((EVENTS / "ingest" / "valid_csv.json").read_text()))

    assert event.detail.bucket.name == "selfheal-local-databucket"
    assert event.detail.object.key == "incoming/churn/first.csv"
    assert event.detail.object.version_id and event.detail.object.size == 21874


@pytest.mark.parametrize(("change", "field"), [
    ({"source": "aws.ec2"}, "source"),
    ({"detail-type": "Object Deleted"}, "detail-type"),
    ({"detail": {"bucket": {"name": "b"}}}, "detail.object"),
    ({"time": "yesterday"}, "time"),
])
def test_a_malformed_s3_event_names_what_is_wrong(change, field):
    event = json.loads((EVENTS / "ingest" / "valid_csv.json").read_text()) | change

    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        S3ObjectCreatedEvent.model_validate(event)


@pytest.mark.parametrize(("change", "field"), [
    ({"object": {"key": "incoming/churn/a.csv", "size": 1.5}}, "detail.object.size"),  # Powertools takes a float
    ({"object": {"key": ""}}, "detail.object.key"),
    ({"bucket": {"name": ""}}, "detail.bucket.name"),
    ({"request-id": None}, "detail.request-id"),  # S3 always says which request created the object
])
def test_our_constraints_on_powertools_s3_event_model_name_what_is_wrong(change, field):
    event = json.loads((EVENTS / "ingest" / "valid_csv.json").read_text())
    event["detail"] |= change

    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        S3ObjectCreatedEvent.model_validate(event)


def test_a_payload_with_an_unknown_field_is_refused():
    payload = json.loads((EVENTS / "evaluate_gate" / "pass.json").read_text()) | {"extra": 1}

    with pytest.raises(ValidationError, match="extra"):
        GateRequest.model_validate(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


def mutated_sample(data: st.DataObject) -> dict:
    """A real sample with a few top-level fields replaced by junk."""
    event = json.loads(data.draw(st.sampled_from(SAMPLES)).read_text())
    for key in data.draw(st.lists(st.sampled_from(sorted(event)), max_size=3)):
        event[key] = data.draw(json_values)
    return event


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_junk_raises_nothing_but_validation_error(data):
    document = mutated_sample(data) if data.draw(st.booleans()) else data.draw(json_values)
    for model in MODELS.values():
        with contextlib.suppress(ValidationError):
            model.model_validate(document)
