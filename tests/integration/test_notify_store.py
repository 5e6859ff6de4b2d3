"""The dispatcher over the DynamoDB store (moto, through boto3's real API): the leases it takes
itself, a writer's round on a change another process wrote and the drain's, are ones DynamoDB
accepts and its marks are recorded under them. The dispatcher's rules are in
tests/unit/services/test_notify_dispatch.py (in-memory store); this is what only the real
store's requests can show."""

from __future__ import annotations

from datetime import timedelta

from backend.domain import notice
from backend.domain.model import Job
from backend.domain.status import JobStatus
from backend.services.notify import Dispatcher
from tests.conftest import T0, make_job

S = JobStatus
AFTER_THE_WRITERS_LEASE = T0 + notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(minutes=1)


class Sink:
    name = "sns"

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    def notify(self, job: Job, seq: int) -> None:
        self.sent.append((job.job_id, seq))


def _ended_elsewhere(store) -> Job:
    """A job that ended in another process: its writer took the delivery lease and died."""
    store.set_notify_targets(["sns"])
    job = store.register(make_job("elsewhere")).job
    ended = store.transition(job, S.STOPPED, at=T0, reason="stopped").job
    assert store.holds_delivery(ended) and not store.holds_delivery(ended)  # forgotten with its process
    return ended


def test_a_round_on_a_change_another_process_wrote_takes_its_own_lease_and_records(store):
    job = _ended_elsewhere(store)
    sink = Sink()
    report = Dispatcher(store, [sink], clock=lambda: AFTER_THE_WRITERS_LEASE).deliver(job)
    assert (report.sent, report.pending) == (job.last_seq, 0)
    assert store.get(job.job_id).delivered == {"sns": job.last_seq}
    assert store.outbox_job_ids() == []


def test_the_drain_takes_its_own_lease_and_records(store):
    job = _ended_elsewhere(store)
    sink = Sink()
    report = Dispatcher(store, [sink], clock=lambda: AFTER_THE_WRITERS_LEASE).drain()
    assert (report.sent, report.pending) == (job.last_seq, 0)
    assert sorted(sink.sent) == [(job.job_id, seq) for seq in range(1, job.last_seq + 1)]
    assert store.outbox_job_ids() == []
