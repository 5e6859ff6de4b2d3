"""SageMaker event times as AWS sends them: numbers (epoch seconds or milliseconds), numeric
strings of epoch milliseconds (the documented event), ISO-8601 strings; anything else is an
:class:`UnparseableEvent`, never a ``ValueError`` from deep inside ``datetime``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend.adapters.sagemaker_events import UnparseableEvent, event_time, parse_state_change
from backend.ports import TrainingState
from tests.fixtures import samples

INSTANT = datetime(2020, 3, 10, 9, 18, 9, 50000, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [1583831889050, 1583831889.05, "1583831889050", " 1583831889050 ", "1583831889.050", "2020-03-10T09:18:09.050Z",
     "2020-03-10T09:18:09.050+00:00", "2020-03-10T10:18:09.050+01:00", INSTANT, 1583831889050.0],
)
def test_every_documented_spelling_of_a_time_is_the_same_instant(value):
    assert event_time(value) == INSTANT


def test_missing_times_are_none():
    assert event_time(None) is None and event_time("") is None


@pytest.mark.parametrize("value", ["not a time", "15838318890500000000000", {"a": 1}, [1], True, float("nan"), "-", "2020-13-45"])
def test_what_is_not_a_time_is_an_unparseable_event(value):
    with pytest.raises(UnparseableEvent):
        event_time(value)


def test_the_documented_event_parses_to_a_completed_status_with_its_times():
    status = parse_state_change(samples.sagemaker_state_change())
    assert status.name == "89c96cc8-dded-4739-afcc-6f1dc936701d"
    assert status.state is TrainingState.COMPLETED
    assert status.started_at == INSTANT and status.ended_at == INSTANT


@pytest.mark.parametrize("event", [{}, {"detail": None}, {"detail": []}, {"detail": {"TrainingJobName": ""}}, {"detail": {"TrainingJobName": 3}}])
def test_an_event_without_a_usable_detail_is_unparseable(event):
    with pytest.raises(UnparseableEvent):
        parse_state_change(event)
