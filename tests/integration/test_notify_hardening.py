"""Issue 16, notifications: permanent Slack refusals of a card update are not retried (no
thread reply posted again on every drain), and a delivery round never outlives its lease (no
second dispatcher sends the same change). The real WebClient against the Slack stand-in, the
real dispatcher and job store over moto."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from backend.adapters.slack.notifier import build_slack_notifier
from backend.config import Settings
from backend.domain.model import SlackThread
from backend.domain.status import JobStatus
from backend.ports import Applied
from backend.services.notify import Dispatcher
from tests.conftest import T0, make_job

S = JobStatus
CHANNEL = "C0TRAIN"


@pytest.fixture
def wired(store, slack):
    settings = Settings(JOBS_TABLE_NAME=store.table_name, SLACK_BOT_TOKEN="xoxb-t", SLACK_SIGNING_SECRET="s", SLACK_API_URL=slack.api_url)
    notifier = build_slack_notifier(settings, store)
    store.set_notify_targets([notifier.name])
    return Dispatcher(store, [notifier], clock=lambda: T0 + timedelta(hours=1))


@pytest.mark.parametrize("refusal", ["message_not_found", "cant_update_message", "edit_window_closed"])
def test_a_root_card_slack_will_not_update_is_given_up_and_the_reply_is_posted_once(store, slack, wired, refusal):
    job = store.register(make_job("bert", slack=SlackThread(channel_id=CHANNEL))).job
    wired.deliver(job)
    job = store.get(job.job_id)
    slack.fail_next("chat.update", error=refusal, count=5)  # the card was deleted, or is too old

    moved = store.transition(job, S.STOPPED, at=T0 + timedelta(minutes=1), reason="stopped by <@U1> before launch")
    assert isinstance(moved, Applied)
    wired.deliver(moved.job)
    for _ in range(3):
        wired.drain()

    replies = [m["text"] for m in slack.thread(CHANNEL, job.slack.thread_ts)[1:]]
    assert len(replies) == 1 and "Stopped" in replies[0]
    assert store.outbox_job_ids() == []


class SlowNotifier:
    """A notifier whose every send takes 25 s of the shared clock; on its third send another
    dispatcher (a drain in another Lambda) tries the same job."""

    name = "slow"

    def __init__(self, clock: list) -> None:
        self._clock = clock
        self.sent: Counter = Counter()
        self.meanwhile = None
        self._calls = 0

    def notify(self, job, seq: int) -> None:
        self._calls += 1
        self._clock[0] += timedelta(seconds=25)
        self.sent[(job.job_id, seq)] += 1
        if self._calls == 3 and self.meanwhile is not None:
            self.meanwhile(job.job_id)


def test_a_delivery_round_stops_before_its_lease_ends_so_no_change_is_sent_twice(store):
    now = [T0]
    notifier = SlowNotifier(now)
    store.set_notify_targets([notifier.name])
    first = Dispatcher(store, [notifier], clock=lambda: now[0])
    second = Dispatcher(store, [notifier], clock=lambda: now[0])
    notifier.meanwhile = lambda job_id: second.deliver(store.get(job_id))

    job = store.register(make_job("bert")).job
    # The last change is one a person acts on, so the writer's round sends them all (quiet ones
    # wait for such a change: backend.domain.notice).
    for minute, status in enumerate((S.LAUNCHED, S.IN_PROGRESS, S.COMPLETED), start=1):
        extra = {}
        if status is S.LAUNCHED:
            from backend.domain.model import Attempt, attempt_name

            extra["attempts"] = [Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=T0)]
        job = store.transition(job, status, at=T0 + timedelta(minutes=minute), reason=status.value, **extra).job

    for _ in range(4):
        first.deliver(store.get(job.job_id))
        now[0] += timedelta(seconds=90)

    assert set(notifier.sent) == {(job.job_id, seq) for seq in range(1, job.last_seq + 1)}
    assert max(notifier.sent.values()) == 1, notifier.sent


def _slack_notifiers(store, standin, **pacing):
    """The Slack notifiers wired to ``standin`` as the composition root wires them (``pacing``:
    the clock and sleep they pace on), and the store told to deliver to them."""
    from backend.adapters.slack.notifier import build_slack_notifiers

    settings = Settings(JOBS_TABLE_NAME=store.table_name, SLACK_BOT_TOKEN="xoxb-t", SLACK_SIGNING_SECRET="s", SLACK_API_URL=standin.api_url)
    notifiers = build_slack_notifiers(settings, store, **pacing)
    store.set_notify_targets([n.name for n in notifiers])
    return notifiers


def test_slack_pacing_on_a_simulated_clock_waits_on_that_clock_and_slack_never_answers_429(store):
    """Slack judges its limits on the same simulated clock (as it would on real time): ten
    jobs registered at once in one channel get their cards posted, about one a second past the
    burst, the waits moving the clock instead of sleeping, and Slack never refuses one."""
    from backend.adapters.slack.notifier import POST_BURST
    from infra.local.standins.sagemaker import FakeClock
    from infra.local.standins.slack import SlackStandIn

    clock = FakeClock(start=T0.timestamp())
    with SlackStandIn(team_id="T1", limit_clock=clock) as standin:
        notifiers = _slack_notifiers(store, standin, clock=clock.now, sleep=clock.advance)
        dispatcher = Dispatcher(store, notifiers, clock=clock.now)
        for n in range(10):
            dispatcher.deliver(store.register(make_job(f"bert-{n}", slack=SlackThread(channel_id=CHANNEL))).job)

        posts = standin.calls_to("chat.postMessage")
        assert len(posts) == 10
        assert standin.traffic()["rate_limited"] == {}
        assert clock() - T0.timestamp() == pytest.approx(10 - POST_BURST, abs=1.0)


def test_a_registration_never_waits_for_slacks_pace_its_card_follows(store):
    """Ten jobs submitted at once in one channel: each is registered (and its launch asked
    for) at the moment it was submitted; root cards past the channel's burst are posted after
    registration, paced, and every job gets its card in the end."""
    from backend.services.jobs import Actor, JobService
    from infra.local.standins.sagemaker import FakeClock
    from infra.local.standins.slack import SlackStandIn
    from tests.conftest import job_args

    clock = FakeClock(start=T0.timestamp())
    with SlackStandIn(team_id="T1", limit_clock=clock) as standin:
        notifiers = _slack_notifiers(store, standin, clock=clock.now, sleep=clock.advance)
        jobs = JobService(store, None, Dispatcher(store, notifiers, clock=clock.now), clock=clock.now, is_admin=lambda user: False)
        waited: list[float] = []
        for n in range(10):
            submitted_at = clock()
            jobs.submit(
                name=f"bert-{n}", job_args=job_args(), actor=Actor(team_id="T1", user_id="U1"),
                slack=SlackThread(channel_id=CHANNEL), on_registered=lambda _r, t=submitted_at: waited.append(clock() - t),
            )

        assert waited == [0.0] * 10
        roots = [m for m in standin.calls_to("chat.postMessage") if not m.params.get("thread_ts")]
        assert len(roots) == 10 and standin.traffic()["rate_limited"] == {}


def test_without_waiting_a_post_past_the_channels_pace_stays_in_the_outbox_until_a_later_delivery(store):
    """What the launcher does with its "Launched" deliveries: six jobs' root cards in one
    channel; the burst goes out, the rest would have to wait and stay pending (nothing slept),
    and a later delivery that may wait sends them."""
    from backend.adapters.slack.notifier import POST_BURST
    from backend.ports import notify_without_waiting
    from infra.local.standins.sagemaker import FakeClock
    from infra.local.standins.slack import SlackStandIn

    clock = FakeClock(start=T0.timestamp())
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    with SlackStandIn(team_id="T1", limit_clock=clock) as standin:
        notifiers = _slack_notifiers(store, standin, clock=clock.now, sleep=sleep)
        dispatcher = Dispatcher(store, notifiers, clock=clock.now)
        jobs = [store.register(make_job(f"bert-{n}", slack=SlackThread(channel_id=CHANNEL))).job for n in range(6)]

        with notify_without_waiting():
            for job in jobs:
                dispatcher.deliver(job)
        assert len(standin.calls_to("chat.postMessage")) == POST_BURST and slept == []
        assert len(store.outbox_job_ids()) == 6 - POST_BURST

        for _ in range(6):
            clock.advance(60)  # the outbox's retry time
            dispatcher.drain()
        assert len(standin.calls_to("chat.postMessage")) == 6
        assert store.outbox_job_ids() == [] and standin.traffic()["rate_limited"] == {}


def test_without_waiting_a_429_is_not_slept_through_and_the_change_stays_pending(store):
    """Slack answers 429 (other posters share the channel's limit): a delivery that may wait
    sleeps the Retry-After and succeeds; one that may not (the launcher's) fails at once and
    leaves the change in the outbox."""
    from backend.ports import notify_without_waiting
    from infra.local.standins.slack import SlackStandIn

    with SlackStandIn(team_id="T1") as standin:
        notifiers = _slack_notifiers(store, standin)
        dispatcher = Dispatcher(store, notifiers, clock=lambda: T0 + timedelta(hours=1))
        first, second = (store.register(make_job(f"bert-{n}", slack=SlackThread(channel_id=CHANNEL))).job for n in range(2))

        standin.fail_next("chat.postMessage", status=429, retry_after=1)
        with notify_without_waiting():
            dispatcher.deliver(first)
        # One call: the 429 was not slept through and retried (that would be a second call).
        assert len(standin.calls_to("chat.postMessage")) == 1 and first.job_id in store.outbox_job_ids()

        standin.fail_next("chat.postMessage", status=429, retry_after=1)
        dispatcher.deliver(second)
        assert len(standin.calls_to("chat.postMessage")) == 3  # the 429, then its retry a second later
        assert second.job_id not in store.outbox_job_ids()
