"""Notifications: JSON on the topic, with a subject SNS accepts whatever the input."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from selfheal_shared.notify import publish, subject_line


def test_a_notification_arrives_as_json_with_its_subject_and_event(cloud):
    publish("selfheal churn: run registered", {"run_id": "r1", "metrics": {"auc": 0.9}}, event="run.finished")

    [note] = cloud.notifications()
    assert note["subject"] == "selfheal churn: run registered"
    assert note["event"] == "run.finished"
    assert note["message"] == {"event": "run.finished", "run_id": "r1", "metrics": {"auc": 0.9}}


def test_a_message_with_nan_is_refused_rather_than_sent_as_invalid_json(cloud):
    with pytest.raises(ValueError):
        publish("s", {"auc": float("nan")}, event="x")


@given(st.text())
def test_any_subject_becomes_one_sns_accepts(text):
    subject = subject_line(text)
    assert 0 < len(subject) < 100 and subject.isascii() and subject.isprintable()
