"""Sends in doubt (backend/services/notify.py on the in-memory store): a send whose answer was
lost, or a round killed between a send and the write that records it, is looked for by a
notifier that can look before it is sent again; found, it is recorded without a second send.
The normal path never looks and never writes more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from backend.domain import notice
from backend.domain.model import Attempt, Job, attempt_name
from backend.domain.status import JobStatus
from backend.errors import NotifierRejected, NotifierUnavailable, NotifierUncertain, StoreUnavailable
from backend.ports import Applied
from backend.services.notify import Dispatcher
from tests.conftest import make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.unit.services.conftest import Clock
from tests.unit.services.test_notify_outbox import Sink, _ended

S = JobStatus
PAST_THE_LEASE = notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1)


class Killed(BaseException):
    """The Lambda was killed here (no ``except Exception`` sees it)."""


class LookingSink(Sink):
    """A notifier that can look (the Slack thread): what it was sent is what it finds."""

    def __init__(self, name: str = "slack") -> None:
        super().__init__(name)
        self.looks: list[tuple[str, int]] = []
        self.on_look: Callable[[Job, int], None] | None = None

    def already_told(self, job: Job, seq: int) -> bool:
        self.looks.append((job.job_id, seq))
        hook, self.on_look = self.on_look, None
        if hook is not None:
            hook(job, seq)
        return self.sent[(job.job_id, seq)] > 0


def _answer_lost(job: Job, seq: int) -> None:
    raise NotifierUncertain("The read operation timed out")  # after the sink took the message


def _wired(*sinks: Sink, clock: Clock | None = None) -> tuple[MemoryJobStore, Dispatcher, Clock]:
    clock = clock or Clock()
    store = MemoryJobStore(notify_targets=[s.name for s in sinks])
    return store, Dispatcher(store, list(sinks), clock), clock


def _later(clock: Clock, by: timedelta = notice.RETRY_MAX) -> None:
    clock.advance(by)


def test_a_send_whose_answer_was_lost_is_looked_for_and_recorded_without_a_second_send():
    slack = LookingSink()
    store, dispatcher, clock = _wired(slack)
    job = _ended(store, clock)
    slack.on_send = _answer_lost  # change 1's post landed; its answer did not come back

    first = dispatcher.deliver(job)
    assert first.pending == 1 and store.get(job.job_id).doubts == {"slack": 1}
    _later(clock)
    again = dispatcher.drain()

    assert max(slack.sent.values()) == 1 and set(slack.sent) == {(job.job_id, s) for s in range(1, job.last_seq + 1)}
    assert again.confirmed == 1 and slack.looks == [(job.job_id, 1)]  # only the change in doubt
    stored = store.get(job.job_id)
    assert stored.doubts is None and stored.delivered == {"slack": job.last_seq} and store.outbox_job_ids() == []
    assert dispatcher.take_totals().confirmed == 1


def test_a_lost_answer_of_a_send_that_never_landed_is_looked_for_then_sent_once():
    slack = LookingSink()
    store, dispatcher, clock = _wired(slack)
    job = _ended(store, clock)

    def timed_out_before_landing(job: Job, seq: int) -> None:
        slack.sent[(job.job_id, seq)] -= 1  # Slack never took it
        raise NotifierUncertain("timed out")

    slack.on_send = timed_out_before_landing
    dispatcher.deliver(job)
    _later(clock)
    report = dispatcher.drain()
    assert report.confirmed == 0 and slack.looks == [(job.job_id, 1)]
    assert all(count == 1 for count in slack.sent.values()) and len(slack.sent) == job.last_seq
    assert store.get(job.job_id).doubts is None


def test_a_round_killed_after_a_send_is_looked_for_by_whoever_takes_its_lease_over():
    slack, sns = LookingSink(), Sink("sns")
    store, dispatcher, clock = _wired(slack, sns)
    job = _ended(store, clock)

    def killed(job: Job, seq: int) -> None:
        raise Killed  # on the SNS send, after every Slack reply went out: nothing recorded

    sns.on_send = killed
    with pytest.raises(Killed):
        dispatcher.deliver(job)
    assert store.get(job.job_id).delivered == {} and store.get(job.job_id).doubts is None
    writes = store.delivery_writes

    clock.advance(PAST_THE_LEASE)
    report = dispatcher.drain()

    assert set(slack.sent.values()) == {1}, slack.sent  # never posted twice
    assert report.confirmed == job.last_seq and len(slack.looks) == job.last_seq
    assert store.delivery_writes - writes == 2  # the drain's own two: its lease, its marks
    assert store.get(job.job_id).doubts is None and store.outbox_job_ids() == []


def test_a_round_whose_record_failed_is_looked_for_by_the_next_one():
    slack = LookingSink()
    store, dispatcher, clock = _wired(slack)
    job = _ended(store, clock)
    finish = store.finish_delivery

    def unavailable(*args, **kwargs):
        store.finish_delivery = finish
        raise StoreUnavailable("ProvisionedThroughputExceeded")

    store.finish_delivery = unavailable  # type: ignore[method-assign]
    assert dispatcher.deliver(job).pending == 1
    clock.advance(PAST_THE_LEASE)
    report = dispatcher.drain()
    assert report.confirmed == job.last_seq and report.sent == 0
    assert set(slack.sent.values()) == {1} and store.outbox_job_ids() == []


def test_an_urgent_writer_that_takes_over_a_killed_rounds_lease_looks_before_telling_the_earlier_changes():
    slack = LookingSink()
    store, dispatcher, clock = _wired(slack)
    job = store.register(make_job("retried", now=clock())).job
    attempt = Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=clock())
    job = store.transition(job, S.LAUNCHED, at=clock(), attempts=[attempt]).job
    retried = store.transition(job, S.RETRYING, at=clock(), reason="boom", next_attempt_at=clock()).job

    def killed(job: Job, seq: int) -> None:
        raise Killed  # change 1 landed, then the run was killed: nothing recorded

    slack.on_send = killed
    with pytest.raises(Killed):
        dispatcher.deliver(retried)

    clock.advance(PAST_THE_LEASE)
    stopped = store.transition(store.get(retried.job_id), S.STOPPED, at=clock(), reason="stopped")
    assert isinstance(stopped, Applied) and stopped.job.doubts == {"slack": retried.last_seq}
    dispatcher.deliver(stopped.job)  # its writer holds the lease its own write took over

    assert set(slack.sent.values()) == {1} and len(slack.sent) == stopped.job.last_seq, slack.sent
    # The killed round read changes 1-3; the stop's own change was never in doubt.
    assert slack.looks == [(retried.job_id, seq) for seq in range(1, retried.last_seq + 1)]
    assert store.outbox_job_ids() == [] and store.get(retried.job_id).doubts is None


def test_a_look_that_fails_leaves_the_change_pending_and_still_in_doubt():
    slack = LookingSink()
    store, dispatcher, clock = _wired(slack)
    job = _ended(store, clock)
    slack.on_send = _answer_lost
    dispatcher.deliver(job)

    def cannot_read(job: Job, seq: int) -> None:
        raise NotifierUnavailable("conversations.replies answered 429")

    slack.on_look = cannot_read
    _later(clock)
    report = dispatcher.drain()
    assert report.pending == 1 and report.confirmed == 0 and slack.sent[(job.job_id, 1)] == 1
    assert store.get(job.job_id).doubts == {"slack": 1}  # "could not find out" is not "not sent"
    _later(clock)
    assert dispatcher.drain().confirmed == 1 and set(slack.sent.values()) == {1}


def test_a_look_refused_for_good_sends_the_change_rather_than_keep_it_for_ever():
    slack = LookingSink()
    store, dispatcher, clock = _wired(slack)
    job = _ended(store, clock)

    def never_landed(job: Job, seq: int) -> None:
        slack.sent[(job.job_id, seq)] -= 1
        raise NotifierUncertain("timed out")

    def missing_scope(job: Job, seq: int) -> None:
        raise NotifierRejected("conversations.replies refused: missing_scope")

    slack.on_send = never_landed
    dispatcher.deliver(job)
    _later(clock)
    slack.on_look = missing_scope
    dispatcher.drain()
    assert slack.looks == [(job.job_id, 1)]  # it tried
    assert slack.sent[(job.job_id, 1)] == 1 and store.outbox_job_ids() == []


def test_the_normal_path_never_looks_and_writes_only_the_delivered_marks():
    slack, sns = LookingSink(), Sink("sns")
    store, dispatcher, clock = _wired(slack, sns)
    job = _ended(store, clock)
    writes = store.delivery_writes
    dispatcher.deliver(job)
    assert slack.looks == [] and store.delivery_writes - writes == 1
    assert store.get(job.job_id).doubts is None and store.outbox_job_ids() == []
    # A plain failure (a 429: nothing landed) is retried without a look too.
    other = _ended(store, clock, "other")

    def rate_limited(job: Job, seq: int) -> None:
        slack.sent[(job.job_id, seq)] -= 1
        raise NotifierUnavailable("ratelimited")

    slack.on_send = rate_limited
    dispatcher.deliver(other)
    assert store.get(other.job_id).doubts is None
    _later(clock)
    dispatcher.drain()
    assert slack.looks == [] and set(slack.sent.values()) == {1}


def test_a_lost_answer_from_a_notifier_that_cannot_look_is_only_pending():
    sns = Sink("sns")
    store, dispatcher, clock = _wired(sns)
    job = _ended(store, clock)
    sns.on_send = _answer_lost
    dispatcher.deliver(job)
    assert store.get(job.job_id).doubts is None  # nothing would use it: SNS carries a dedup key
    _later(clock)
    dispatcher.drain()
    assert sns.sent[(job.job_id, 1)] == 2 and store.outbox_job_ids() == []
