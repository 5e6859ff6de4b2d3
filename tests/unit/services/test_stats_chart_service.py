"""The chart function's use case over the in-memory store and a recording sharer: one request
posts one chart (Lambda may deliver an asynchronous event twice), a failure that may pass is
retried by Lambda (the claim is released), one that cannot pass ends the request; and the
request's event round-trips and refuses what is not one."""

from __future__ import annotations

import pytest

from backend.domain.charts import ChartRequest
from backend.domain.model import Owner
from backend.domain.records import RecordKind
from backend.errors import InvalidRequest, NotifierRejected, NotifierUnavailable
from backend.services.chart import PNG_SIGNATURE
from backend.services.stats import StatsReader
from backend.services.stats_chart import StatsCharts
from tests.fakes.memory_store import MemoryJobStore
from tests.stats_history import NOW, known_history

REQUEST = ChartRequest(key="1.2.3", scope="all", days=7, requester=Owner(team_id="T1", user_id="U0ALICE"),
                       channel_id="C1", thread_ts="1700000000.000200")


class RecordingSharer:
    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.shared: list[tuple] = []
        self.failures = list(failures or [])

    def share_chart(self, request, stats, png):
        if self.failures:
            raise self.failures.pop(0)
        self.shared.append((request, stats, png))
        return f"F{len(self.shared)}"


def _charts(sharer: RecordingSharer) -> tuple[StatsCharts, MemoryJobStore]:
    store = MemoryJobStore()
    for job in known_history(NOW):
        store.register(job)
    return StatsCharts(store, StatsReader(store, lambda: NOW), sharer, clock=lambda: NOW), store


def test_a_request_is_drawn_from_the_window_and_shared_once_however_often_it_is_delivered():
    sharer = RecordingSharer()
    charts, store = _charts(sharer)

    first, again = charts.post(REQUEST), charts.post(REQUEST)

    assert first.kind == "posted" and first.file_id == "F1" and first.jobs == 6
    assert again.kind == "duplicate"
    ((request, stats, png),) = sharer.shared
    assert request == REQUEST and stats.total == 6 and png.startswith(PNG_SIGNATURE)
    assert store.get_record(RecordKind.CHART, REQUEST.key)["ExpiresAt"] > NOW.timestamp()


def test_a_failure_that_may_pass_releases_the_claim_so_lambdas_retry_draws_it():
    sharer = RecordingSharer([NotifierUnavailable("Slack is down")])
    charts, store = _charts(sharer)

    with pytest.raises(NotifierUnavailable):
        charts.post(REQUEST)
    assert store.get_record(RecordKind.CHART, REQUEST.key) is None
    assert charts.post(REQUEST).kind == "posted" and len(sharer.shared) == 1


def test_a_refusal_no_retry_can_fix_ends_the_request_without_raising():
    sharer = RecordingSharer([NotifierRejected("not_in_channel")])
    charts, store = _charts(sharer)

    assert charts.post(REQUEST).kind == "refused"
    assert charts.post(REQUEST).kind == "duplicate" and sharer.shared == []


def test_mine_reads_the_requesters_jobs_only():
    sharer = RecordingSharer()
    charts, _store = _charts(sharer)
    mine = REQUEST.model_copy(update={"scope": "mine", "key": "mine", "requester": Owner(team_id="T0", user_id="U0NOBODY")})

    charts.post(mine)

    ((_request, stats, _png),) = sharer.shared
    assert stats.total == 0


def test_the_request_travels_as_its_event_and_anything_else_is_refused_by_name():
    assert ChartRequest.from_event(REQUEST.event()) == REQUEST
    assert REQUEST.event()["trainbot"] == "chart" and REQUEST.event()["request"]["threadTs"] == REQUEST.thread_ts
    with pytest.raises(InvalidRequest, match="not a chart request"):
        ChartRequest.from_event({"trainbot": "kick"})
    broken = REQUEST.event()
    broken["request"]["days"] = 0
    with pytest.raises(InvalidRequest, match="days"):
        ChartRequest.from_event(broken)
