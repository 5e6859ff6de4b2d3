"""A Slack reply is posted once even when its post's answer is lost or the run is killed before
recording it: the real WebClient against the Slack stand-in (which keeps the post and loses the
answer), the real dispatcher and the DynamoDB store over moto (a run killed at the botocore
edge). The next delivery looks in the thread (conversations.replies, the reply's metadata)
instead of posting again; the normal path never looks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from slack_sdk import WebClient

from backend.adapters.slack.client import web_client
from backend.adapters.slack.notifier import CHANGE_EVENT, SlackCalls, SlackCardNotifier, SlackNotifier, SlackPacer
from backend.config import Settings
from backend.domain import notice
from backend.domain.model import Attempt, AttemptOutcome, NotifyMode, SlackThread, attempt_name
from backend.domain.status import JobStatus
from backend.errors import NotifierRejected, NotifierUnavailable, NotifierUncertain
from backend.ports import Applied
from backend.services.notify import Dispatcher
from tests.conftest import T0, make_job

S = JobStatus
CHANNEL = "C0TRAIN"
PAST_THE_LEASE = notice.DELIVERY_LEASE + notice.SEND_BOUND + timedelta(seconds=1)


class Now:
    """The dispatcher's clock: where the tests' writes are (T0 + 2 minutes), moved by hand."""

    def __init__(self) -> None:
        self.at = T0 + timedelta(minutes=2)

    def __call__(self):
        return self.at

    def advance(self, by: timedelta = notice.RETRY_MAX) -> None:
        self.at += by


class Killed(BaseException):
    """The Lambda is killed (a timeout, an out-of-memory kill): nothing after this runs."""


def _settings(store, slack) -> Settings:
    return Settings(JOBS_TABLE_NAME=store.table_name, SLACK_BOT_TOKEN="xoxb-t", SLACK_SIGNING_SECRET="s", SLACK_API_URL=slack.api_url)


def _wire(store, slack, now, *, timeout: float | None = None) -> Dispatcher:
    """The Slack notifiers as the composition root builds them, on the notify client (its
    bounded 429 handling, no connection retries); ``timeout``: a shorter client timeout."""
    client = web_client(_settings(store, slack), purpose="notify")
    if timeout is not None:
        client.timeout = timeout
    calls = SlackCalls(client, SlackPacer())
    replies = SlackNotifier(calls, store, "us-east-1", now=now)
    notifiers = [replies, SlackCardNotifier(calls, replies, "us-east-1", store=store)]
    store.set_notify_targets([n.name for n in notifiers])
    return Dispatcher(store, notifiers, clock=now)


@pytest.fixture
def now():
    return Now()


def _submitted(store, dispatcher, **kwargs):
    job = dispatcher.announce(make_job("bert-lr3", user="U0ALICE", slack=SlackThread(channel_id=CHANNEL), **kwargs))
    return store.register(job).job


def _launched(store, dispatcher, job):
    attempt = Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=T0, launched_at=T0, outcome=AttemptOutcome.RUNNING)
    moved = store.transition(job, S.LAUNCHED, at=T0 + timedelta(minutes=1), attempts=[attempt])
    assert isinstance(moved, Applied)
    dispatcher.deliver(moved.job)
    return store.get(job.job_id)


def _failed(store, job):
    attempt = job.current_attempt.model_copy(update={"outcome": AttemptOutcome.FAILED, "ended_at": T0 + timedelta(minutes=2)})
    moved = store.transition(job, S.FAILED, at=T0 + timedelta(minutes=2), reason="AlgorithmError: boom", attempts=[attempt])
    assert isinstance(moved, Applied)
    return moved.job


def _replies(slack, job) -> list[str]:
    return [m["text"] for m in slack.thread(CHANNEL, job.slack.thread_ts)[1:]]


def _is_reply(params) -> bool:
    return bool(params.get("thread_ts"))


@pytest.mark.parametrize("how", ["connection closed", "answer after the client's timeout"])
def test_a_reply_whose_answer_was_lost_is_found_by_the_next_drain_and_not_posted_again(store, slack, now, how):
    wired = _wire(store, slack, now, timeout=0.5)
    job = _launched(store, wired, _submitted(store, wired))
    slack.lose_next_answer("chat.postMessage", match=_is_reply, delay=0.0 if how == "connection closed" else 1.5)

    report = wired.deliver(_failed(store, job))
    assert report.failures == {"slack": 1}  # as far as the client knows, the reply failed
    assert len(_replies(slack, job)) == 1  # but Slack has it
    assert store.get(job.job_id).doubts == {"slack": job.last_seq + 1}

    now.advance()  # past the failed round's backoff
    again = wired.drain()

    assert again.confirmed == 1 and len(_replies(slack, job)) == 1 and "Failed" in _replies(slack, job)[0]
    assert len(slack.calls_to("conversations.replies")) == 1  # one look: the extra call a lost answer costs
    assert store.outbox_job_ids() == [] and store.get(job.job_id).doubts is None
    reply = slack.thread(CHANNEL, job.slack.thread_ts)[1]
    assert reply["metadata"] == {"event_type": CHANGE_EVENT, "event_payload": {"job_id": job.job_id, "seq": job.last_seq + 1}}


def test_a_reply_that_never_reached_slack_is_posted_after_the_look(store, slack, now):
    wired = _wire(store, slack, now)
    job = _launched(store, wired, _submitted(store, wired))
    slack.fail_next("chat.postMessage", status=503)  # a 5xx: it may or may not have landed (here: not)
    wired.deliver(_failed(store, job))
    assert _replies(slack, job) == [] and store.get(job.job_id).doubts is not None
    now.advance()
    report = wired.drain()
    assert report.confirmed == 0 and len(_replies(slack, job)) == 1
    assert len(slack.calls_to("conversations.replies")) == 1 and store.outbox_job_ids() == []


def test_a_run_killed_after_its_reply_and_before_recording_it_posts_nothing_twice(store, slack, now, dynamodb):
    wired = _wire(store, slack, now)
    job = _launched(store, wired, _submitted(store, wired))

    def killed_on_the_record(params, **_kwargs):
        if params.get("UpdateExpression", "").startswith("SET Delivered"):
            dynamodb.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", killed_on_the_record)
            raise Killed("the Lambda ran out of time between the post and the record")

    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", killed_on_the_record)
    with pytest.raises(Killed):
        wired.deliver(_failed(store, job))
    assert len(_replies(slack, job)) == 1 and store.get(job.job_id).delivered.get("slack", 0) <= job.last_seq

    now.advance(PAST_THE_LEASE)  # its lease ran out and nobody gave it back
    report = wired.drain()

    assert report.confirmed == 1 and len(_replies(slack, job)) == 1
    assert store.outbox_job_ids() == [] and store.get(job.job_id).doubts is None


def test_a_whole_life_on_the_normal_path_never_reads_a_thread(store, slack, now):
    wired = _wire(store, slack, now)
    job = _launched(store, wired, _submitted(store, wired, notify=NotifyMode.ALL))
    wired.deliver(_failed(store, job))
    now.advance()
    wired.drain()
    assert len(_replies(slack, job)) == 2 and slack.calls_to("conversations.replies") == []
    assert store.get(job.job_id).doubts is None


def test_slack_failures_are_uncertain_only_when_the_request_may_have_taken_effect(slack):
    calls = SlackCalls(WebClient(token="xoxb-t", base_url=slack.api_url, timeout=0.5, retry_handlers=[]), SlackPacer())
    for status in (500, 503):
        slack.fail_next("chat.postMessage", status=status)
        with pytest.raises(NotifierUncertain):
            calls.post(CHANNEL, text="5xx")
    slack.fail_next("chat.postMessage", status=429, retry_after=30)
    with pytest.raises(NotifierUnavailable) as limited:
        calls.post(CHANNEL, text="429")
    assert not isinstance(limited.value, NotifierUncertain)  # a refusal: nothing was posted
    slack.fail_next("chat.postMessage", error="not_in_channel")
    with pytest.raises(NotifierRejected):
        calls.post(CHANNEL, text="refused")
    slack.lose_next_answer("chat.postMessage")
    with pytest.raises(NotifierUncertain):
        calls.post(CHANNEL, text="answer lost")
    slack.lose_next_answer("chat.postMessage", delay=1.5)
    with pytest.raises(NotifierUncertain):
        calls.post(CHANNEL, text="answer late")
    # Nothing listens there: the request never left, so nothing can have landed.
    closed = SlackCalls(WebClient(token="xoxb-t", base_url="http://127.0.0.1:9/api/", timeout=0.5, retry_handlers=[]), SlackPacer())
    with pytest.raises(NotifierUnavailable) as refused:
        closed.post(CHANNEL, text="nobody home")
    assert not isinstance(refused.value, NotifierUncertain)


def test_a_look_slack_refuses_for_a_missing_scope_is_rejected_and_one_that_fails_is_unavailable(slack):
    calls = SlackCalls(WebClient(token="xoxb-t", base_url=slack.api_url, retry_handlers=[]), SlackPacer())
    root = calls.post(CHANNEL, text="card")["ts"]
    metadata = {"event_type": CHANGE_EVENT, "event_payload": {"job_id": "tb-x", "seq": 2}}
    assert not calls.thread_has(CHANNEL, root, metadata)
    calls.post(CHANNEL, thread_ts=root, text="reply", metadata=metadata)
    assert calls.thread_has(CHANNEL, root, metadata)
    assert not calls.thread_has(CHANNEL, root, {**metadata, "event_payload": {"job_id": "tb-x", "seq": 3}})
    slack.fail_next("conversations.replies", status=503)
    with pytest.raises(NotifierUnavailable):
        calls.thread_has(CHANNEL, root, metadata)
    slack.scopes = frozenset({"chat:write"})
    with pytest.raises(NotifierRejected, match="missing_scope"):
        calls.thread_has(CHANNEL, root, metadata)


def test_a_thread_longer_than_a_page_is_read_to_its_end(slack, monkeypatch):
    from backend.adapters.slack import notifier

    monkeypatch.setattr(notifier, "REPLIES_PAGE", 2)
    slack.limits.enabled = False
    calls = SlackCalls(WebClient(token="xoxb-t", base_url=slack.api_url, retry_handlers=[]), SlackPacer())
    root = calls.post(CHANNEL, text="card")["ts"]
    for seq in range(2, 7):
        calls.post(CHANNEL, thread_ts=root, text=f"change {seq}", metadata={"event_type": CHANGE_EVENT, "event_payload": {"job_id": "tb-x", "seq": seq}})
    assert calls.thread_has(CHANNEL, root, {"event_type": CHANGE_EVENT, "event_payload": {"job_id": "tb-x", "seq": 6}})
    assert len(slack.calls_to("conversations.replies")) == 3  # six messages, two a page


# --- a sweep's replies: its jobs' (notify=all), its summary ------------------------------------


def _sweep(store, slack, size, notify=None):
    ts = WebClient(token="xoxb-t", base_url=slack.api_url).chat_postMessage(channel=CHANNEL, text="Sweep")["ts"]
    store.put_record("sweep-root", "sw-1", {"Channel": CHANNEL, "Ts": ts, "Name": "grid", "Owner": "U0ALICE", "Total": size})
    jobs = [
        make_job(f"grid-{i}", user="U0ALICE", slack=SlackThread(channel_id=CHANNEL, thread_ts=ts), sweep_id="sw-1", client_token=f"sw-1/{i}", notify=notify)
        for i in range(size)
    ]
    store.register_many(jobs, "sw-1")
    return ts, [store.get(job.job_id) for job in jobs]


def _sweep_thread(slack, ts) -> list[str]:
    return [m["text"] for m in slack.thread(CHANNEL, ts)[1:]]


def test_a_sweep_jobs_reply_whose_answer_was_lost_is_not_posted_again_by_the_redelivery(store, slack, now):
    wired = _wire(store, slack, now)
    ts, (first, second) = _sweep(store, slack, 2, notify=NotifyMode.ALL)
    job = _launched(store, wired, first)
    slack.lose_next_answer("chat.postMessage", match=_is_reply)
    wired.deliver(_failed(store, job))
    assert len(_sweep_thread(slack, ts)) == 1  # posted, the answer lost
    now.advance()
    wired.drain()
    assert len(_sweep_thread(slack, ts)) == 1 and job.job_id not in store.outbox_job_ids()
    assert "1 of 2 ended" in str(slack.message(CHANNEL, ts)["blocks"])  # counted once


def test_a_sweep_summary_whose_answer_was_lost_is_looked_for_at_once_and_never_posted_twice(store, slack, now):
    wired = _wire(store, slack, now)
    ts, (only,) = _sweep(store, slack, 1)
    job = _launched(store, wired, only)
    slack.lose_next_answer("chat.postMessage", match=_is_reply)
    report = wired.deliver(_failed(store, job))
    assert report.failures == {} and store.outbox_job_ids() == []  # found at once: delivered
    assert len(_sweep_thread(slack, ts)) == 1 and "<@U0ALICE>" in _sweep_thread(slack, ts)[0]
    assert len(slack.calls_to("conversations.replies")) == 1


def test_a_sweep_summary_posted_by_a_run_killed_before_marking_it_is_found_by_the_next(store, slack, now, dynamodb):
    wired = _wire(store, slack, now)
    ts, (only,) = _sweep(store, slack, 1)
    job = _launched(store, wired, only)

    def killed_on_the_mark(params, **_kwargs):
        key = params.get("Key", {}).get("JobId", {}).get("S", "")
        if key.startswith("sweep-ends#") and params.get("ExpressionAttributeValues", {}).get(":new") == {"N": "1"}:
            dynamodb.meta.events.unregister("provide-client-params.dynamodb.UpdateItem", killed_on_the_mark)
            raise Killed("killed between the summary's post and its mark")

    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", killed_on_the_mark)
    with pytest.raises(Killed):
        wired.deliver(_failed(store, job))
    assert len(_sweep_thread(slack, ts)) == 1

    now.advance()  # the summary's claim and the delivery lease have run out
    wired.drain()
    assert len(_sweep_thread(slack, ts)) == 1 and store.outbox_job_ids() == []
