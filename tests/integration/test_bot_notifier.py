"""The Slack notifiers tell a job's story as a team wants it (backend.domain.notice): the real
WebClient against the Slack stand-in, the real dispatcher and job store over moto. Covers the
announcement, each ending, retries, notify=, sweeps, 429s with Retry-After, permanent refusals
and a Slack outage that delays but loses nothing."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from backend.adapters.slack.client import web_client
from backend.adapters.slack.notifier import SlackCalls, SlackNotifier, SlackPacer, build_slack_notifiers
from backend.config import Settings
from backend.domain import notice
from backend.domain.model import Attempt, AttemptOutcome, FailureClass, NotifyMode, SlackThread, attempt_name
from backend.domain.status import JobStatus
from backend.ports import Applied
from backend.services.notify import Dispatcher
from tests.conftest import T0, make_job

S = JobStatus
CHANNEL = "C0TRAIN"


class Now:
    """The dispatcher's clock; a test moves it past a failed round's backoff."""

    def __init__(self) -> None:
        self.at = T0 + timedelta(hours=1)

    def __call__(self):
        return self.at

    def after_backoff(self) -> None:
        self.at += notice.RETRY_MAX


@pytest.fixture
def now():
    return Now()


@pytest.fixture
def wired(store, slack, now):
    settings = Settings(JOBS_TABLE_NAME=store.table_name, SLACK_BOT_TOKEN="xoxb-t", SLACK_SIGNING_SECRET="s", SLACK_API_URL=slack.api_url)
    notifiers = build_slack_notifiers(settings, store)
    store.set_notify_targets([n.name for n in notifiers])
    return Dispatcher(store, notifiers, clock=now)


def _submit(store, dispatcher, **kwargs):
    job = dispatcher.announce(make_job("bert-lr3", user="U0ALICE", slack=SlackThread(channel_id=CHANNEL), **kwargs))
    job = store.register(job).job
    dispatcher.deliver(job)
    return store.get(job.job_id)


def _move(store, dispatcher, job, to, minutes, reason="", **changes):
    outcome = store.transition(job, to, at=T0 + timedelta(minutes=minutes), reason=reason, **changes)
    assert isinstance(outcome, Applied)
    dispatcher.deliver(outcome.job)
    return store.get(job.job_id)


def _attempt(job, number, minute, **fields):
    return Attempt(number=number, name=attempt_name(job.job_id, number), claimed_at=T0 + timedelta(minutes=minute), **fields)


def _launch(store, dispatcher, job, minute, number=1):
    attempt = _attempt(job, number, minute, launched_at=T0 + timedelta(minutes=minute), outcome=AttemptOutcome.RUNNING)
    return _move(store, dispatcher, job, S.LAUNCHED, minute, attempts=[*job.attempts, attempt])


def _end(job, outcome, minute, **fields):
    current = job.current_attempt.model_copy(
        update={"outcome": outcome, "started_at": job.current_attempt.launched_at, "ended_at": T0 + timedelta(minutes=minute), **fields}
    )
    return job.replace_attempt(current)


def _thread(slack, job):
    return [m["text"] for m in slack.thread(CHANNEL, job.slack.thread_ts)]


def _heads(slack, job):
    return [t.split("*")[1] for t in _thread(slack, job)[1:]]


def test_a_submitted_job_gets_one_root_card_recorded_by_its_registration_naming_its_owner(store, slack, wired):
    job = _submit(store, wired)
    wired.deliver(job)  # delivered again: nothing new

    roots = slack.messages(CHANNEL)
    assert len(roots) == 1 and job.slack.thread_ts == roots[0]["ts"]
    assert job.delivered == {"slack": 1, "slack-card": 1}  # written by the registration itself
    assert "bert-lr3" in roots[0]["text"] and "Owner <@U0ALICE>" in roots[0]["blocks"][0]["text"]["text"]
    # The card's post names its owner as every message does (Slack tells them once); its
    # updates notify nobody; the end mentions them again.
    assert slack.traffic()["mentions"] == {"U0ALICE": 1}


@pytest.mark.parametrize(
    ("notify", "replies"),
    [(None, ["Completed"]), (NotifyMode.ALL, ["Launched", "InProgress", "Completed"]), (NotifyMode.FAILURES, []), (NotifyMode.END, ["Completed"])],
)
def test_a_completed_job_is_told_as_its_notify_option_asks_and_the_card_shows_every_state(store, slack, wired, notify, replies):
    job = _submit(store, wired, notify=notify)
    job = _launch(store, wired, job, 1)
    assert "Launched" in slack.message(CHANNEL, job.slack.thread_ts)["text"]  # the card, at once
    job = _move(store, wired, job, S.IN_PROGRESS, 2)
    assert "InProgress" in slack.message(CHANNEL, job.slack.thread_ts)["text"]
    job = _move(store, wired, job, S.COMPLETED, 62, attempts=_end(job, AttemptOutcome.COMPLETED, 62, billable_seconds=3500))

    assert _heads(slack, job) == replies
    if replies:
        assert "<@U0ALICE>" in _thread(slack, job)[-1] and "billable 58 min" in _thread(slack, job)[-1]
    assert slack.traffic()["mentions"] == {"U0ALICE": 2 if replies else 1}  # the card's post, and the end's reply
    assert "Completed" in slack.message(CHANNEL, job.slack.thread_ts)["text"]
    assert store.outbox_job_ids() == []


def test_a_failed_job_ends_with_a_mention_its_failure_class_and_sagemakers_reason(store, slack, wired):
    job = _submit(store, wired)
    job = _launch(store, wired, job, 1)
    reason = "AlgorithmError: ExecuteUserScriptError: CUDA out of memory"
    attempts = _end(job, AttemptOutcome.FAILED, 9, failure_class=FailureClass.ALGORITHM, reason=reason)
    job = _move(store, wired, job, S.FAILED, 9, reason=reason, attempts=attempts)

    last = _thread(slack, job)[-1]
    assert last.startswith(":x: *Failed* <@U0ALICE>") and "(algorithm)" in last and "CUDA out of memory" in last
    root = slack.message(CHANNEL, job.slack.thread_ts)
    assert "Retry" in str(root["blocks"]) and "View logs" in str(root["blocks"])


def test_a_retry_reply_says_which_attempt_and_retry_of_the_budget_when_and_why_without_a_mention(store, slack, wired):
    job = _submit(store, wired, retry_budget=4)
    job = _launch(store, wired, job, 0)
    reason = "AlgorithmError: ExecuteUserScriptError: ExitCode 1"
    attempts = _end(job, AttemptOutcome.FAILED, 2, failure_class=FailureClass.ALGORITHM, reason=reason)
    job = _move(
        store, wired, job, S.RETRYING, 2, reason=reason, attempts=attempts, algorithm_failures=1, next_attempt_at=T0 + timedelta(minutes=10)
    )

    assert "*Retrying*: attempt 2 (algorithm retry 1 of 4) in 8 min: AlgorithmError" in _thread(slack, job)[-1]
    assert "<@" not in _thread(slack, job)[-1]
    assert slack.traffic()["mentions"] == {"U0ALICE": 1}  # the card's post only


def test_a_job_an_admin_stopped_tells_its_owner_who_on_the_card_and_in_the_thread(store, slack, wired):
    job = _submit(store, wired)
    job = _launch(store, wired, job, 1)
    job = _move(store, wired, job, S.STOPPING, 5, reason="stopped by <@U0ADMIN>")
    # SageMaker reports the stop; the monitor ends the job "as asked", in its own word.
    job = _move(store, wired, job, S.STOPPED, 6, reason="stopped", attempts=_end(job, AttemptOutcome.STOPPED, 6, failure_class=FailureClass.STOPPED))

    assert _thread(slack, job)[-1] == ":black_square_for_stop: *Stopped* <@U0ALICE>: *bert-lr3* was stopped by <@U0ADMIN>"
    card = slack.message(CHANNEL, job.slack.thread_ts)["blocks"]
    assert card[-1]["elements"][0]["text"] == "Stopped by <@U0ADMIN>."


def test_a_retry_for_capacity_is_on_the_card_not_in_the_thread(store, slack, wired):
    job = _submit(store, wired, retry_budget=4)
    job = _launch(store, wired, job, 0)
    reason = "CapacityError: Unable to provision requested ML compute capacity"
    attempts = _end(job, AttemptOutcome.FAILED, 2, failure_class=FailureClass.CAPACITY, reason=reason)
    job = _move(
        store, wired, job, S.RETRYING, 2, reason=reason, attempts=attempts, capacity_wait_since=T0 + timedelta(minutes=2),
        next_attempt_at=T0 + timedelta(minutes=10),
    )

    assert len(_thread(slack, job)) == 1  # the card alone: no reply
    card = str(slack.message(CHANNEL, job.slack.thread_ts)["blocks"])
    assert f"No capacity yet on `ml.g5.xlarge`: 1 attempt since {T0 + timedelta(minutes=2):%H:%M} UTC" in card


def test_a_stopped_job_names_who_stopped_it_with_a_real_mention(store, slack, wired):
    job = _submit(store, wired)
    job = _launch(store, wired, job, 1)
    job = _move(store, wired, job, S.STOPPING, 5, reason="stopped by <@U0BOB>")
    job = _move(store, wired, job, S.STOPPED, 6, reason="stopped by <@U0BOB>", attempts=_end(job, AttemptOutcome.STOPPED, 6))

    thread = _thread(slack, job)
    assert len(thread) == 2  # the card's "Stopping" needs no reply
    assert thread[-1].startswith(":black_square_for_stop: *Stopped* <@U0ALICE>")
    assert thread[-1].endswith("was stopped by <@U0BOB>")  # a mention people see as one


def test_user_text_in_a_job_name_or_a_reason_is_never_live_markup(store, slack, wired):
    job = wired.announce(make_job("<!channel> <https://evil|x>", slack=SlackThread(channel_id=CHANNEL)))
    job = store.register(job).job
    job = _launch(store, wired, job, 1)
    reason = "AlgorithmError: see <https://evil|here> <!here> stopped by <@U0EVE>"
    attempts = _end(job, AttemptOutcome.FAILED, 3, failure_class=FailureClass.ALGORITHM, reason=reason)
    job = _move(store, wired, job, S.FAILED, 3, reason=reason, attempts=attempts)
    everything = str(slack.messages(CHANNEL)) + str(slack.thread(CHANNEL, job.slack.thread_ts))
    assert "<!channel>" not in everything and "<https://evil" not in everything and "<!here>" not in everything
    assert "<@U0EVE>" not in everything  # only a reason Trainbot wrote itself may name someone


def test_a_429_is_retried_after_the_time_slack_asks_for(store, slack, wired):
    slack.fail_next("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    job = _submit(store, wired)

    assert time.monotonic() - started >= 1.0
    assert job.slack.thread_ts and len(slack.calls_to("chat.postMessage")) == 2


def test_a_long_rate_limit_leaves_the_root_card_pending_instead_of_blocking(store, slack, wired, now):
    slack.fail_next("chat.postMessage", status=429, retry_after=120, count=2)
    started = time.monotonic()
    job = _submit(store, wired)

    assert time.monotonic() - started < 5 and job.slack.thread_ts is None
    assert store.outbox_job_ids() == [job.job_id]
    now.after_backoff()  # the failed round backed off (backend.domain.notice.retry_due)
    assert wired.drain().sent == 2 and store.outbox_job_ids() == []
    assert store.get(job.job_id).slack.thread_ts == slack.messages(CHANNEL)[0]["ts"]


def test_a_slack_outage_delays_the_story_but_loses_nothing_and_never_blocks_the_job(store, slack, wired, now):
    job = _submit(store, wired, notify=NotifyMode.ALL)
    slack.fail_next("*", status=503, count=6)  # Slack is down for the next three changes (reply and card each)
    job = _launch(store, wired, job, 1)
    job = _move(store, wired, job, S.IN_PROGRESS, 2)
    job = _move(store, wired, job, S.COMPLETED, 3, attempts=_end(job, AttemptOutcome.COMPLETED, 3))
    assert job.status is S.COMPLETED and store.outbox_job_ids() == [job.job_id]
    assert slack.thread(CHANNEL, job.slack.thread_ts)[1:] == []

    now.after_backoff()  # the failed round backed off (backend.domain.notice.retry_due)
    wired.drain()  # Slack is back: the outbox drain tells the whole story, in order
    assert _heads(slack, job) == ["Launched", "InProgress", "Completed"]
    assert "Completed" in slack.message(CHANNEL, job.slack.thread_ts)["text"]
    assert store.outbox_job_ids() == []


def test_a_card_slack_will_not_update_is_given_up_and_its_reply_is_posted_once(store, slack, wired):
    job = _submit(store, wired)
    slack.fail_next("chat.update", error="message_not_found", count=9)  # the card was deleted
    job = _launch(store, wired, job, 1)
    job = _move(store, wired, job, S.STOPPED, 2, reason="stopped by <@U0ALICE>", attempts=_end(job, AttemptOutcome.STOPPED, 2))
    for _ in range(3):
        wired.drain()
    assert _heads(slack, job) == ["Stopped"]
    assert store.outbox_job_ids() == []


def test_a_reply_slack_refuses_for_good_is_given_up_not_kept_in_the_outbox_forever(store, slack, wired):
    job = _submit(store, wired)
    job = _launch(store, wired, job, 1)
    slack.fail_next("chat.postMessage", error="not_in_channel")
    job = _move(store, wired, job, S.FAILED, 2, reason="AlgorithmError: x", attempts=_end(job, AttemptOutcome.FAILED, 2))
    assert store.outbox_job_ids() == []  # logged and counted as handled
    assert slack.thread(CHANNEL, job.slack.thread_ts)[1:] == []


def _sweep(store, slack, wired, size, notify=None):
    from slack_sdk import WebClient

    ts = WebClient(token="xoxb-t", base_url=slack.api_url).chat_postMessage(channel=CHANNEL, text="Sweep")["ts"]
    store.put_record("sweep-root", "sw-1", {"Channel": CHANNEL, "Ts": ts, "Name": "grid", "Owner": "U0ALICE", "Total": size})
    jobs = [
        make_job(f"grid-{i}", user="U0ALICE", slack=SlackThread(channel_id=CHANNEL, thread_ts=ts), sweep_id="sw-1", client_token=f"sw-1/{i}", notify=notify)
        for i in range(size)
    ]
    store.register_many(jobs, "sw-1")
    return ts, [store.get(job.job_id) for job in jobs]


def _finish(store, wired, job, outcome=AttemptOutcome.COMPLETED, status=S.COMPLETED, minute=5):
    job = _launch(store, wired, job, 1)
    fields = {"failure_class": FailureClass.ALGORITHM, "reason": "AlgorithmError: boom"} if status is S.FAILED else {}
    return _move(store, wired, job, status, minute, reason=fields.get("reason", ""), attempts=_end(job, outcome, minute, **fields))


def test_a_sweep_replies_only_once_it_ends_counts_each_end_once_and_mentions_its_owner_once(store, slack, wired):
    ts, jobs = _sweep(store, slack, wired, 2)
    first = _finish(store, wired, jobs[0])
    # Redelivering the same change (a lost delivery record) must not count it twice.
    wired._notifiers[0].notify(first, first.last_seq)
    assert slack.thread(CHANNEL, ts)[1:] == []
    assert "1 of 2 ended" in str(slack.message(CHANNEL, ts)["blocks"])

    _finish(store, wired, jobs[1], AttemptOutcome.FAILED, S.FAILED, minute=6)
    replies = [m["text"] for m in slack.thread(CHANNEL, ts)[1:]]
    assert len(replies) == 1 and "<@U0ALICE>" in replies[0] and "Completed 1" in replies[0] and "grid-1" in replies[0]
    card = str(slack.message(CHANNEL, ts)["blocks"])
    assert "2 of 2 ended" in card and "Failed 1" in card
    assert slack.traffic()["mentions"] == {"U0ALICE": 1}


def test_a_sweep_with_notify_all_replies_for_each_job_without_mentions(store, slack, wired):
    ts, jobs = _sweep(store, slack, wired, 2, notify=NotifyMode.ALL)
    for job in jobs:
        _finish(store, wired, job)
    replies = [m["text"] for m in slack.thread(CHANNEL, ts)[1:]]
    assert len(replies) == 3 and "grid-0" in replies[0] and "grid-1" in replies[1]
    assert slack.traffic()["mentions"] == {"U0ALICE": 1}  # the summary only


def test_a_sweep_summary_slack_refused_once_is_posted_when_the_change_is_delivered_again(store, slack, wired, now):
    ts, jobs = _sweep(store, slack, wired, 1)
    slack.fail_next("chat.postMessage", status=503)  # the summary cannot be posted now
    job = _finish(store, wired, jobs[0])
    assert slack.thread(CHANNEL, ts)[1:] == [] and store.outbox_job_ids() == [job.job_id]
    now.after_backoff()  # the failed round backed off (backend.domain.notice.retry_due)
    wired.drain()
    replies = [m["text"] for m in slack.thread(CHANNEL, ts)[1:]]
    assert len(replies) == 1 and "<@U0ALICE>" in replies[0]
    assert store.outbox_job_ids() == []


class Crash(Exception):
    """The Lambda dies (a timeout, an out-of-memory kill) at the point a test chooses."""


def test_a_sweep_summary_claimed_by_a_delivery_that_crashed_before_posting_it_is_posted_by_a_later_one(store, slack, now):
    settings = Settings(JOBS_TABLE_NAME=store.table_name, SLACK_BOT_TOKEN="xoxb-t", SLACK_SIGNING_SECRET="s", SLACK_API_URL=slack.api_url)
    replies = SlackNotifier(SlackCalls(web_client(settings, purpose="notify"), SlackPacer()), store, settings.aws_region, now=now)
    store.set_notify_targets([replies.name])
    wired = Dispatcher(store, [replies], clock=now)
    ts, jobs = _sweep(store, slack, wired, 1)

    claim = store.claim_sweep_mark

    def claim_then_crash(sweep_id, attribute, expected, new):
        claim(sweep_id, attribute, expected, new)
        store.claim_sweep_mark = claim
        raise Crash("died between claiming the summary and posting it")

    store.claim_sweep_mark = claim_then_crash
    with pytest.raises(Crash):
        _finish(store, wired, jobs[0])
    assert slack.thread(CHANNEL, ts)[1:] == [] and store.outbox_job_ids() == [jobs[0].job_id]

    wired.drain()  # the claim still holds: nothing is posted twice, the change stays pending
    assert slack.thread(CHANNEL, ts)[1:] == [] and store.outbox_job_ids() == [jobs[0].job_id]
    now.after_backoff()  # the claim has run out
    wired.drain()
    wired.drain()
    replies_posted = [m["text"] for m in slack.thread(CHANNEL, ts)[1:]]
    assert len(replies_posted) == 1 and "<@U0ALICE>" in replies_posted[0]
    assert store.outbox_job_ids() == []
