"""The dispatcher's own rules on the in-memory store (backend/services/notify.py): what a round
delivers and to whom, what it counts, when it extends its lease, when a drain stops, and that a
notifier's failure never escapes. The outbox's delivery guarantees are in test_notify_outbox.py."""

from __future__ import annotations

from datetime import timedelta

from backend.domain import notice
from backend.domain.approval import ApprovalState
from backend.domain.model import Approval, Job
from backend.errors import NotifierRejected, NotifierUnavailable, StoreUnavailable
from backend.services.notify import FAILED_ROUNDS_PER_DRAIN, LEASE_MARGIN, DeliveryReport, Dispatcher, takeover_point
from tests.conftest import T0, make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.unit.services.conftest import Clock
from tests.unit.services.test_notify_outbox import FailingFor, Sink, _ended


class EagerSink(Sink):
    eager = True


def test_a_lease_may_be_taken_over_only_a_send_bound_after_it_ran_out():
    assert takeover_point(T0) == T0 - notice.SEND_BOUND


def test_take_totals_sums_what_rounds_did_since_the_last_call_then_starts_again():
    clock = Clock()
    ok, down, refusing = Sink("ok"), FailingFor("down", set()), Sink("refusing")

    def refuse(job: Job, seq: int) -> None:
        raise NotifierRejected("restricted_action")

    store = MemoryJobStore(notify_targets=["ok", "refusing", "down"])
    dispatcher = Dispatcher(store, [ok, refusing, down], clock)
    job = _ended(store, clock)
    down.failing.add(job.job_id)
    refusing.on_send = refuse
    report = dispatcher.deliver(job)
    assert (report.sent, report.rejected, report.pending) == (job.last_seq * 2 - 1, 1, 1)
    totals = dispatcher.take_totals()
    assert (totals.sent, totals.rejected, totals.pending) == (report.sent, 1, 1)
    assert totals.failures == {}  # totals count sends, not failures per notifier
    again = dispatcher.take_totals()
    assert (again.sent, again.rejected, again.pending) == (0, 0, 0)


def test_a_deferred_change_reaches_only_the_eager_notifiers_and_is_counted_deferred():
    clock = Clock()
    card, sns = EagerSink("card"), Sink("sns")
    store = MemoryJobStore(notify_targets=["card", "sns"])
    dispatcher = Dispatcher(store, [card, sns], clock)
    job = store.register(make_job("bert", now=clock())).job  # New: not urgent
    report = dispatcher.deliver(job)
    assert report.deferred == 1 and report.sent == 0
    assert dict(card.sent) == {(job.job_id, job.last_seq): 1} and not sns.sent
    # an eager notifier that already had the newest change is not told again
    done = job.model_copy(update={"delivered": {"card": job.last_seq}})
    dispatcher.deliver(done)
    assert dict(card.sent) == {(job.job_id, job.last_seq): 1}


def test_nothing_pending_or_no_notifiers_is_a_round_that_does_nothing():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    delivered = job.model_copy(update={"delivered": {"sns": job.last_seq}})
    report = Dispatcher(store, [sns], clock).deliver(delivered)
    assert (report.sent, report.deferred, report.busy, report.pending) == (0, 0, 0, 0) and not sns.sent
    empty = Dispatcher(store, [], clock)
    assert empty.deliver(job).deferred == 0
    assert empty.drain().sent == 0 and store.outbox_job_ids() == [job.job_id]


def test_an_eager_refresh_that_fails_is_skipped_not_raised():
    clock = Clock()
    card = EagerSink("card")

    def down(job: Job, seq: int) -> None:
        raise NotifierUnavailable("rate limited")

    store = MemoryJobStore(notify_targets=["card"])
    dispatcher = Dispatcher(store, [card], clock)
    job = store.register(make_job("bert", now=clock())).job
    card.on_send = down
    assert dispatcher.deliver(job).deferred == 1
    card.on_send = down
    dispatcher.refresh(job)  # does not raise either


def test_refresh_shows_the_newest_change_on_eager_notifiers_only():
    clock = Clock()
    card, sns = EagerSink("card"), Sink("sns")
    store = MemoryJobStore(notify_targets=["card", "sns"])
    job = _ended(store, clock)
    Dispatcher(store, [card, sns], clock).refresh(job)
    assert dict(card.sent) == {(job.job_id, job.last_seq): 1} and not sns.sent


def test_a_store_that_is_down_leaves_the_round_pending():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    store.holds_delivery = lambda job: False  # the writer's lease is not ours

    def down(*args, **kwargs):
        raise StoreUnavailable("throttled")

    store.acquire_delivery = down
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))  # due for the drain
    report = Dispatcher(store, [sns], clock).deliver(job)
    assert (report.pending, report.busy, report.sent) == (1, 0, 0) and not sns.sent
    drained = Dispatcher(store, [sns], clock).drain()
    assert (drained.pending, drained.sent) == (1, 0)


def test_a_round_whose_lease_is_held_by_another_dispatcher_is_busy():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    store.holds_delivery = lambda job: False
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))  # the writer's lease is over
    assert store.acquire_delivery(job.job_id, "other", takeover_point(clock()), clock() + notice.DELIVERY_LEASE) is not None
    dispatcher = Dispatcher(store, [sns], clock)
    assert dispatcher.deliver(job).busy == 1
    assert dispatcher.drain().busy == 1
    assert not sns.sent


def test_a_send_starting_with_less_than_the_margin_left_first_extends_the_lease():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    extended: list[object] = []
    real_extend = store.extend_delivery

    def spy(job, token, delivered, until):
        extended.append((dict(delivered), until))
        return real_extend(job, token, delivered, until)

    store.extend_delivery = spy

    def slow(job: Job, seq: int) -> None:
        clock.advance(notice.DELIVERY_LEASE - LEASE_MARGIN)  # exactly the margin left

    sns.on_send = slow
    start = clock()
    report = Dispatcher(store, [sns], clock).deliver(job)
    assert report.sent == job.last_seq
    # after the first send exactly LEASE_MARGIN is left: what was sent is recorded and the
    # lease runs a full DELIVERY_LEASE from then
    assert extended == [({"sns": 1}, start + 2 * notice.DELIVERY_LEASE - LEASE_MARGIN)]


def test_a_lease_lost_before_a_send_ends_the_round_pending():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    store.extend_delivery = lambda *args: False

    def slow(job: Job, seq: int) -> None:
        clock.advance(notice.DELIVERY_LEASE)

    sns.on_send = slow
    report = Dispatcher(store, [sns], clock).deliver(job)
    assert (report.sent, report.pending) == (1, 1)
    assert dict(sns.sent) == {(job.job_id, 1): 1}


def test_a_drain_stops_after_its_quota_of_failed_rounds():
    clock = Clock()
    failing: set[str] = set()
    sink = FailingFor("slack", failing)
    store = MemoryJobStore(notify_targets=["slack"])
    dispatcher = Dispatcher(store, [sink], clock)
    for i in range(FAILED_ROUNDS_PER_DRAIN + 5):
        failing.add(_ended(store, clock, f"broken-{i}").job_id)
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
    report = dispatcher.drain()
    assert sink.tries == FAILED_ROUNDS_PER_DRAIN
    assert report.failures == {"slack": FAILED_ROUNDS_PER_DRAIN}


def test_a_drain_asked_to_stop_takes_no_further_job():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    first, second = _ended(store, clock, "a"), _ended(store, clock, "b")
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
    calls = iter([True, False])
    report = Dispatcher(store, [sns], clock).drain(should_continue=lambda: next(calls))
    assert report.sent == first.last_seq
    assert {job_id for job_id, _ in sns.sent} == {first.job_id}
    assert store.outbox_job_ids() == [second.job_id]


def test_announce_keeps_what_a_notifier_recorded_and_a_failure_leaves_the_job_as_it_was():
    class Announcer(Sink):
        def __init__(self, name: str, fail: bool = False) -> None:
            super().__init__(name)
            self.fail = fail
            self.withdrawn: list[str] = []

        def announce(self, job: Job) -> Job:
            if self.fail:
                raise NotifierUnavailable("down")
            return job.model_copy(update={"delivered": {**job.delivered, self.name: 1}})

        def withdraw(self, job: Job) -> None:
            if self.fail:
                raise NotifierRejected("gone")
            self.withdrawn.append(job.job_id)

    good, bad, plain = Announcer("card"), Announcer("broken", fail=True), Sink("sns")
    dispatcher = Dispatcher(MemoryJobStore(notify_targets=["broken", "card", "sns"]), [bad, plain, good], Clock())
    job = make_job("bert")
    announced = dispatcher.announce(job)
    assert announced.delivered == {"card": 1}
    dispatcher.withdraw(announced)
    assert good.withdrawn == [job.job_id]


def test_a_round_adds_to_the_report_it_is_given():
    from backend.services.notify import DeliveryReport

    clock = Clock()
    refusing = Sink("slack")

    class Refuses(Sink):
        def notify(self, job: Job, seq: int) -> None:
            raise NotifierRejected("restricted_action")

    store = MemoryJobStore(notify_targets=["slack"])
    job = _ended(store, clock)
    report = Dispatcher(store, [Refuses("slack")], clock).deliver(job, DeliveryReport(rejected=5, pending=2))
    assert report.rejected == 5 + job.last_seq  # every change refused, each counted
    assert store.outbox_job_ids() == []  # refused for good: given up, the job leaves the outbox
    assert not refusing.sent

    def down(*args, **kwargs):
        raise StoreUnavailable("throttled")

    later = _ended(store, clock, "later")
    store.finish_delivery = down  # sent, but not recorded
    sent = Dispatcher(store, [Sink("slack")], clock).deliver(later, DeliveryReport(pending=2))
    assert (sent.sent, sent.pending) == (later.last_seq, 3)


def test_a_drain_counts_every_busy_and_every_store_failure():
    clock = Clock()
    store = MemoryJobStore(notify_targets=["sns"])
    for name in ("a", "b"):
        _ended(store, clock, name)
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
    for job_id in store.outbox_job_ids():
        store.acquire_delivery(job_id, "other", takeover_point(clock()), clock() + notice.DELIVERY_LEASE)
    assert Dispatcher(store, [Sink("sns")], clock).drain().busy == 2

    def down(*args, **kwargs):
        raise StoreUnavailable("throttled")

    store.acquire_delivery = down
    assert Dispatcher(store, [Sink("sns")], clock).drain().pending == 2


def test_a_drain_takes_the_lease_for_a_full_delivery_lease_from_now():
    clock = Clock()
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
    taken: list[tuple] = []
    real = store.acquire_delivery

    def spy(job_id, token, takeover, until):
        taken.append((job_id, takeover, until))
        return real(job_id, token, takeover, until)

    store.acquire_delivery = spy
    Dispatcher(store, [Sink("sns")], clock).drain()
    assert taken == [(job.job_id, clock() - notice.SEND_BOUND, clock() + notice.DELIVERY_LEASE)]


def test_a_round_sends_each_notifier_only_what_it_has_not_had():
    clock = Clock()
    sns, slack = Sink("sns"), Sink("slack")
    store = MemoryJobStore(notify_targets=["sns", "slack"])
    job = _ended(store, clock)
    assert job.last_seq == 3
    part = job.model_copy(update={"delivered": {"sns": 2, "slack": 0}})
    Dispatcher(store, [sns, slack], clock).deliver(part)
    assert set(sns.sent) == {(job.job_id, 3)}
    assert set(slack.sent) == {(job.job_id, seq) for seq in (1, 2, 3)}


def test_a_compacted_change_is_skipped_and_the_later_ones_still_sent():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    compacted = job.model_copy(update={"history": job.history[1:]})  # seq 1 compacted away
    Dispatcher(store, [sns], clock).deliver(compacted)
    assert set(sns.sent) == {(job.job_id, 2), (job.job_id, 3)}
    assert store.outbox_job_ids() == []


def test_a_store_down_while_extending_the_lease_ends_the_round():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)

    def down(*args, **kwargs):
        raise StoreUnavailable("throttled")

    store.extend_delivery = down

    def slow(job: Job, seq: int) -> None:
        clock.advance(notice.DELIVERY_LEASE)

    sns.on_send = slow
    report = Dispatcher(store, [sns], clock).deliver(job)
    assert (report.sent, report.pending) == (1, 1)
    assert dict(sns.sent) == {(job.job_id, 1): 1}


def test_a_failed_first_change_keeps_the_job_in_the_outbox():
    clock = Clock()
    failing: set[str] = set()
    sink = FailingFor("slack", failing)
    store = MemoryJobStore(notify_targets=["slack"])
    job = store.register(make_job("new", now=clock())).job  # one change (New), deferred
    assert job.last_seq == 1
    failing.add(job.job_id)
    clock.advance(timedelta(days=1))
    report = Dispatcher(store, [sink], clock).drain()
    assert report.failures == {"slack": 1}
    assert store.outbox_job_ids() == [job.job_id]


def test_a_drain_reads_at_most_500_jobs_and_healthy_rounds_do_not_count_against_its_quota():
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    for i in range(501):
        _ended(store, clock, f"j{i}")
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
    report = Dispatcher(store, [sns], clock).drain()
    assert len({job_id for job_id, _ in sns.sent}) == 500
    assert report.sent == 500 * 3
    assert len(store.outbox_job_ids()) == 1


def test_a_compacted_change_counts_as_delivered_even_when_the_next_send_fails():
    clock = Clock()
    failing: set[str] = set()
    sink = FailingFor("sns", failing)
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    failing.add(job.job_id)
    compacted = job.model_copy(update={"history": job.history[1:]})  # seq 1 compacted away
    Dispatcher(store, [sink], clock).deliver(compacted)
    assert store.get(job.job_id).delivered == {"sns": 1}


def test_totals_count_only_what_each_round_added_to_the_report_it_was_given():
    from backend.services.notify import DeliveryReport

    clock = Clock()
    store = MemoryJobStore(notify_targets=["sns"])
    dispatcher = Dispatcher(store, [Sink("sns")], clock)
    given = DeliveryReport(sent=7, pending=3, rejected=2)
    first = _ended(store, clock, "a")
    dispatcher.deliver(first, given)
    second = _ended(store, clock, "b")
    dispatcher.deliver(second, given)
    assert (given.sent, given.pending, given.rejected) == (7 + 6, 3, 2)
    totals = dispatcher.take_totals()
    assert (totals.sent, totals.pending, totals.rejected) == (6, 0, 0)

    deferred = DeliveryReport(deferred=4, busy=2, pending=1)
    dispatcher.deliver(store.register(make_job("new", now=clock())).job, deferred)
    assert deferred.deferred == 5


# --- a change that asks the admins, from a process that cannot ask them ---------------------------


class AsksAdmins(Sink):
    """A notifier that can ask the admins (the Slack notifier sends them the approval card)."""

    asks_admins = True


def _held(store: MemoryJobStore, clock: Clock) -> Job:
    """A job registered on hold: its first change asks the admins for their approval."""
    approval = Approval(state=ApprovalState.PENDING, reasons=["ml.p5.48xlarge needs approval"])
    job = store.register(make_job("big", now=clock(), approval=approval)).job
    assert notice.asks_approval(job, 1)
    return job


def test_a_dispatcher_that_cannot_ask_the_admins_hands_an_asking_change_to_the_drain():
    """The CLI without a Slack token delivers what its notifiers can and leaves the job in the
    outbox, due at once, for the deployment's drain, whose Slack notifier sends the card."""
    clock = Clock()
    sns, slack = Sink("sns"), AsksAdmins("slack")
    store = MemoryJobStore(notify_targets=["sns", "slack"])
    job = _held(store, clock)
    report = Dispatcher(store, [sns], clock).deliver(job)
    assert (report.sent, dict(sns.sent)) == (1, {(job.job_id, 1): 1})
    assert store.get(job.job_id).delivered == {"sns": 1}
    assert store.outbox_job_ids(due_by=clock()) == [job.job_id]

    drained = Dispatcher(store, [sns, slack], clock).drain()
    assert (drained.sent, dict(slack.sent), dict(sns.sent)) == (1, {(job.job_id, 1): 1}, {(job.job_id, 1): 1})
    assert store.outbox_job_ids() == []  # the drain's notifiers asked: nothing is handed on


def test_a_dispatcher_that_can_ask_the_admins_delivers_the_asking_change_itself():
    clock = Clock()
    sns, slack = Sink("sns"), AsksAdmins("slack")
    store = MemoryJobStore(notify_targets=["sns", "slack"])
    job = _held(store, clock)
    report = Dispatcher(store, [sns, slack], clock).deliver(job)
    assert report.sent == 2 and dict(slack.sent) == {(job.job_id, 1): 1}
    assert store.outbox_job_ids() == []


# --- what rounds count, and the lease a round takes itself -----------------------------------------


def test_take_totals_adds_up_every_round_since_the_last_call():
    clock = Clock()
    refusing, down = Sink("refusing"), FailingFor("down", set())

    def refuse(job: Job, seq: int) -> None:
        raise NotifierRejected("restricted_action")

    store = MemoryJobStore(notify_targets=["refusing", "down"])
    dispatcher = Dispatcher(store, [refusing, down], clock)
    for name in ("a", "b"):
        job = _ended(store, clock, name)
        down.failing.add(job.job_id)
        refusing.on_send = refuse  # its first change, refused for good
        dispatcher.deliver(job)
    totals = dispatcher.take_totals()
    assert (totals.rejected, totals.pending) == (2, 2)


def test_every_round_adds_its_pending_and_busy_to_the_report_it_is_given():
    clock = Clock()
    given = DeliveryReport(pending=2, busy=3)

    down = FailingFor("sns", set())
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock, "down")
    down.failing.add(job.job_id)
    Dispatcher(store, [down], clock).deliver(job, given)  # a notifier down
    assert given.pending == 3

    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock, "lost")
    store.extend_delivery = lambda *args: False
    slow = Sink("sns")
    slow.on_send = lambda job, seq: clock.advance(notice.DELIVERY_LEASE)
    Dispatcher(store, [slow], clock).deliver(job, given)  # its lease lost before the next send
    assert given.pending == 4

    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock, "held")
    store.holds_delivery = lambda job: False  # the writer's lease is not ours
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))
    store.acquire_delivery(job.job_id, "other", takeover_point(clock()), clock() + notice.DELIVERY_LEASE)
    Dispatcher(store, [Sink("sns")], clock).deliver(job, given)  # another dispatcher holds it
    assert given.busy == 4

    def unavailable(*args, **kwargs):
        raise StoreUnavailable("throttled")

    store.acquire_delivery = unavailable
    Dispatcher(store, [Sink("sns")], clock).deliver(job, given)  # the store is down
    assert given.pending == 5


def test_a_round_on_a_change_it_did_not_write_takes_a_full_lease_of_its_own():
    """A dispatcher handed a change whose writer's lease is not its own takes the lease for a
    full DELIVERY_LEASE from now: no extension before its first send, nobody else's round
    meanwhile, and the marks recorded under its own token."""
    clock = Clock()
    sns = Sink("sns")
    store = MemoryJobStore(notify_targets=["sns"])
    job = _ended(store, clock)
    store.holds_delivery = lambda job: False
    clock.advance(notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1))  # the writer's lease is over
    extended: list[dict[str, int]] = []
    real_extend = store.extend_delivery
    store.extend_delivery = lambda *args: extended.append(dict(args[2])) or real_extend(*args)  # what it recorded
    rivals: list[DeliveryReport] = []

    def meanwhile(job: Job, seq: int) -> None:
        clock.advance(notice.DELIVERY_LEASE + timedelta(seconds=30))  # past our lease, not past its send bound
        rivals.append(Dispatcher(store, [Sink("sns")], clock).deliver(store.get(job.job_id)))

    sns.on_send = meanwhile
    Dispatcher(store, [sns], clock).deliver(job)
    assert [r.busy for r in rivals] == [1]
    assert extended == [{"sns": 1}]  # only once the first send made it late
    assert store.get(job.job_id).delivered == {"sns": job.last_seq}
    assert store.outbox_job_ids() == []
