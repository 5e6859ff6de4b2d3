"""The outbox's delivery guarantees on the in-memory store: each change reaches each notifier
once even when a send outlasts the delivery lease, a failing delivery backs off instead of
blocking the outbox, and what no retry fixes is given up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from backend.domain import notice
from backend.domain.model import Attempt, Job, attempt_name
from backend.domain.status import JobStatus
from backend.errors import NotifierRejected, NotifierUnavailable
from backend.services.notify import FAILED_ROUNDS_PER_DRAIN, Dispatcher
from tests.conftest import make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.unit.services.conftest import Clock

S = JobStatus


class Sink:
    """A notifier counting what it sent per (job, seq); ``on_send`` runs inside a send (after
    the sink took the message, before it answers): how a test makes a send slow."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: Counter[tuple[str, int]] = Counter()
        self.on_send: Callable[[Job, int], None] | None = None

    def notify(self, job: Job, seq: int) -> None:
        self.sent[(job.job_id, seq)] += 1
        hook, self.on_send = self.on_send, None
        if hook is not None:
            hook(job, seq)


def _ended(store: MemoryJobStore, clock: Clock, name: str = "bert") -> Job:
    """A job registered, launched and completed (the end is urgent: its writer holds the lease)."""
    job = store.register(make_job(name, now=clock())).job
    attempt = Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=clock())
    job = store.transition(job, S.LAUNCHED, at=clock(), attempts=[attempt]).job
    return store.transition(job, S.COMPLETED, at=clock(), reason="done").job


def test_a_send_slower_than_the_delivery_lease_is_not_made_again_by_a_second_dispatcher():
    clock = Clock()
    sns, slack = Sink("sns"), Sink("slack")
    store = MemoryJobStore(notify_targets=[sns.name, slack.name])
    first = Dispatcher(store, [sns, slack], clock)
    second = Dispatcher(store, [sns, slack], clock)
    job = _ended(store, clock)

    def slow_publish(job: Job, seq: int) -> None:
        # The publish (with its retries) outlasts the lease; meanwhile another Lambda's drain
        # and a writer's round both try the same job.
        clock.advance(notice.DELIVERY_LEASE + timedelta(seconds=10))
        second.drain()
        second.deliver(store.get(job.job_id))

    sns.on_send = slow_publish
    first.deliver(job)
    for _ in range(3):
        clock.advance(timedelta(minutes=5))
        first.drain()

    every = {(job.job_id, seq) for seq in range(1, job.last_seq + 1)}
    for sink in (sns, slack):
        assert set(sink.sent) == every and max(sink.sent.values()) == 1, (sink.name, sink.sent)
    assert store.outbox_job_ids() == []


def test_a_send_past_the_send_bound_is_the_only_one_sent_twice_and_the_late_round_stops():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=[sns.name])
    first = Dispatcher(store, [sns], clock)
    second = Dispatcher(store, [sns], clock)
    job = _ended(store, clock)

    def hung_publish(job: Job, seq: int) -> None:
        clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
        second.drain()  # the lease is fair game now: the hung send may or may not have landed

    sns.on_send = hung_publish
    first.deliver(job)

    assert sns.sent == Counter({(job.job_id, 1): 2, (job.job_id, 2): 1, (job.job_id, 3): 1})
    assert store.outbox_job_ids() == []


class FailingFor(Sink):
    """A notifier that is unavailable for some jobs, whatever the retry."""

    def __init__(self, name: str, failing: set[str]) -> None:
        super().__init__(name)
        self.failing = failing
        self.tries = 0

    def notify(self, job: Job, seq: int) -> None:
        if job.job_id in self.failing:
            self.tries += 1
            raise NotifierUnavailable(f"{job.job_id}'s channel does not answer")
        super().notify(job, seq)


def test_five_hundred_always_failing_jobs_never_hold_up_a_later_jobs_end_and_cost_bounded_writes():
    clock = Clock()
    failing: set[str] = set()
    sink = FailingFor("slack", failing)
    store = MemoryJobStore(notify_targets=[sink.name])
    dispatcher = Dispatcher(store, [sink], clock)
    for i in range(500):
        job = _ended(store, clock, f"broken-{i}")
        failing.add(job.job_id)
        dispatcher.deliver(job)  # its writer's round fails
    clock.advance(timedelta(minutes=1))
    healthy = _ended(store, clock, "healthy")  # its writer crashed before delivering

    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
    before = store.delivery_writes
    dispatcher.drain()
    assert sink.sent == Counter({(healthy.job_id, seq): 1 for seq in range(1, healthy.last_seq + 1)})
    assert store.delivery_writes - before <= 2  # its lease and its marks

    per_drain, tries_before = [], sink.tries
    for _ in range(120):  # two hours of one drain a minute
        clock.advance(timedelta(minutes=1))
        before = store.delivery_writes
        dispatcher.drain()
        per_drain.append(store.delivery_writes - before)
    assert max(per_drain) <= 2 * FAILED_ROUNDS_PER_DRAIN
    assert sum(per_drain) < 2 * 500 * 10  # a few retries each, backing off, not one per minute
    assert sink.tries - tries_before >= 500  # ...yet every one of them is still tried
    assert len(store.outbox_job_ids()) == 500  # nothing given up: a 5xx is retried later


def test_a_permanent_refusal_is_given_up_for_that_sink_only_and_counted():
    clock = Clock()
    refused, sns = Sink("slack"), Sink("sns")

    def refuse(job: Job, seq: int) -> None:
        raise NotifierRejected("Slack chat.postMessage refused: restricted_action")

    store = MemoryJobStore(notify_targets=[refused.name, sns.name])
    dispatcher = Dispatcher(store, [refused, sns], clock)
    job = _ended(store, clock)
    refused.on_send = refuse
    report = dispatcher.deliver(job)

    assert report.rejected == 1
    assert set(sns.sent) == {(job.job_id, seq) for seq in range(1, job.last_seq + 1)}
    assert store.outbox_job_ids() == []


def test_a_change_written_while_a_round_held_the_lease_is_delivered_by_that_round():
    """The owner stops a job while its Retrying change is being sent: the stop's write cannot
    take the lease (the round holds it), so its own delivery finds it busy. The round, told by
    its record that the job moved on, delivers Stopped at once, not at the next drain (in local
    mode a Completed card waited minutes so behind its Retrying)."""
    clock = Clock()
    sns, slack = Sink("sns"), Sink("slack")
    store = MemoryJobStore(notify_targets=[sns.name, slack.name])
    monitor, stopper = Dispatcher(store, [sns, slack], clock), Dispatcher(store, [sns, slack], clock)
    job = store.register(make_job("bert", now=clock())).job
    attempt = Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=clock())
    launched = store.transition(job, S.LAUNCHED, at=clock(), attempts=[attempt]).job
    retrying = store.transition(launched, S.RETRYING, at=clock(), reason="capacity").job
    stopped: list[Job] = []

    def owner_stops(job: Job, seq: int) -> None:
        done = store.transition(store.get(job.job_id), S.STOPPED, at=clock(), reason="stopped by <@U1>").job
        report = stopper.deliver(done)
        assert report.busy == 1 and report.sent == 0  # the round holds the lease
        stopped.append(done)

    sns.on_send = owner_stops
    monitor.deliver(retrying)
    last = stopped[0].last_seq
    assert sns.sent[(job.job_id, last)] == 1 and slack.sent[(job.job_id, last)] == 1
    assert store.get(job.job_id).delivered == {"sns": last, "slack": last}
    assert store.outbox_job_ids() == []
    assert all(n == 1 for sink in (sns, slack) for n in sink.sent.values())  # each change once per sink
