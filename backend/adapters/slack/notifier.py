"""The Slack notifiers: a job's story in its own Slack thread, told as a team would want it
(:mod:`backend.domain.notice` decides who hears what), within Slack's rate limits.

Two :class:`backend.ports.Notifier` targets, so the dispatcher records each part of a delivery
separately and a refused card update never makes a reply be posted again:

- ``slack`` (:class:`SlackNotifier`): the job's root card, when the job is announced (before it
  is registered, so its thread ``ts`` is stored by the registration itself: no extra write),
  and thread replies, only for the changes the policy asks for. The owner is named as every
  message names people (a mention), so Slack tells them twice: when the card is posted and
  by the reply that ends the job (among replies, only that one mentions them; an edit of the
  card notifies nobody). Sweep jobs share the sweep's root: each end is counted once (one
  conditional write), failures are grouped into digest replies, and the job that ends the
  sweep posts its one final summary, which mentions the owner.
- the admins' approval card (issue 22): delivering the change that put a job on hold (``New``,
  or a re-held ``Retrying``; a sweep: only its first job, whose card stands for the sweep) sends
  each of ``TRAINBOT_ADMIN_USERS`` the card by DM, whatever way the job came in (Slack, the CLI,
  an automatic retry past the budget). One way a card reaches the admins: a card Slack refuses
  now is sent by the change's next delivery, and each admin's progress is a mark on the small
  ``approval#<job id>#<seq>`` record (claimed before the post, set after), so a redelivery or a
  second dispatcher never sends an admin the card twice (but for a crash between a post and
  its mark: that admin is told again once the claim runs out, rather than never).
- ``slack-card`` (:class:`SlackCardNotifier`): ``chat.update`` of the root card with the
  job's latest state; for a sweep job's end, the sweep's card with the tally that counts it
  (a refused update is retried on this target only: the job's reply is never posted twice).
  Idempotent, so it is also sent eagerly for changes whose delivery round
  is deferred (see :mod:`backend.services.notify`), and coalesced: only the newest change of a
  round is rendered; intermediate states are skipped.

Posted once (:meth:`SlackNotifier.already_told`): every thread reply carries Slack message
metadata naming what it tells (a change: ``trainbot_change`` with the job id and seq; a sweep's
summary or digest: ``trainbot_sweep``), so when a post's answer was lost (NotifierUncertain: a
timeout, a dropped connection, a 5xx) or a run was killed before recording it, the next
delivery reads the thread (``conversations.replies`` with ``include_all_metadata``) and records
what it finds instead of posting it again. Only then: the normal path never reads a thread.

Pacing (:class:`SlackPacer`): at most one message per second per channel with a short burst,
and ``chat.update`` kept under the app-wide Tier 3 budget, both per process; Slack's own 429
answers (``Retry-After``) are the limit across processes. A wait longer than the bound turns
into :class:`NotifierUnavailable`: the change stays in the outbox, no Lambda sleeps for long.

Figures (https://api.slack.com/docs/rate-limits): "Posting messages: 1 per second, short bursts
>1 allowed" (chat.postMessage, special tier: "generally allows posting one message per second
per channel, while also maintaining a workspace-wide limit"); chat.update is Tier 3, "50+ per
minute"; a rate-limited call answers HTTP 429 with ``Retry-After`` (seconds).
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger

from backend.adapters.slack import render
from backend.config import Settings
from backend.domain import notice, sweeps
from backend.domain.cost import Estimate, estimate
from backend.domain.records import RecordKind
from backend.domain.spec import Objective, parse_objective
from backend.domain.status import TERMINAL, JobStatus
from backend.domain.times import format_utc
from backend.errors import JobNotFound, NotifierRejected, NotifierUnavailable, NotifierUncertain, StoreUnavailable
from backend.ports import JobRepository, RecordStore, SweepEnd, notify_may_wait

if TYPE_CHECKING:
    from backend.domain.history import HistoryEntry
    from backend.domain.model import Job, JobArgs

logger = Logger(service="trainbot", child=True)

# Slack errors that no retry can fix: the message is given up (logged), not kept forever. The
# last three answer chat.update of a root card that was deleted or is too old to edit.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "no_permission",
        "account_inactive",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        # Posting is not allowed there (admin restrictions, read-only or thread-only channels,
        # a locked thread) or the content can never be sent: retrying changes nothing.
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "cannot_reply_to_message",
        "thread_locked",
        "invalid_blocks_format",
        "no_text",
        "too_many_attachments",
    }
)
# What the look before a re-post (conversations.replies) may be refused for good: the app was
# installed without the history scopes, the token type may not read this conversation, the
# thread is gone. Nothing can be learned there, so the change is posted (logged) rather than
# kept for ever.
LOOKUP_REFUSALS = frozenset({"missing_scope", "not_allowed_token_type", "thread_not_found", "invalid_ts_latest", "invalid_ts_oldest"})
# Messages per conversations.replies page (Slack's documented maximum is 1,000) and pages read
# at most: a thread longer than that is not read to its end (the change stays pending).
REPLIES_PAGE = 200
MAX_REPLY_PAGES = 10
# The metadata event type of every thread reply that tells a change (its payload: job id, seq).
CHANGE_EVENT = "trainbot_change"
SWEEP_EVENT = "trainbot_sweep"
STALL_EVENT = "trainbot_stall"
_ROOT_CACHE = 1024
# How long a delivery's claim on posting a sweep's summary holds (a Slack post with its bounded
# retries takes far less); after that a redelivery may take it over and post it.
SUMMARY_CLAIM_SECONDS = 300
# The same for each admin's approval card; the record of who was told expires after a while.
APPROVAL_CLAIM_SECONDS = 300
APPROVAL_RECORD_SECONDS = 35 * 24 * 3600

# Per process: posts per channel (1 per second, a burst of 3), card updates app-wide (Tier 3 is
# "50+ per minute": we keep to 40, leaving room for the bot's own updates) and the same card at
# most once per SAME_CARD_SECONDS (a sweep card with a live tally stays under 20 a minute).
POSTS_PER_SECOND = 1.0
POST_BURST = 3
UPDATES_PER_MINUTE = 40
SAME_CARD_SECONDS = 5.0
# conversations.replies, read only to look before re-posting a change whose first send may
# have landed: Tier 3 too ("50+ per minute", per method), kept to 40 like the updates.
READS_PER_MINUTE = 40
MAX_PACING_WAIT = 2.0  # longer than this and the change waits in the outbox instead


def entry_of(job: Job, seq: int) -> HistoryEntry | None:
    """History entry ``seq`` (None if it is not kept)."""
    for entry in reversed(job.history):
        if entry.seq == seq:
            return entry
    return None


def change_metadata(job: Job, seq: int) -> dict[str, Any]:
    """The Slack message metadata of the reply that tells change ``seq`` of ``job``: how a
    later delivery finds it in the thread (https://docs.slack.dev/messaging/message-metadata:
    ``event_type`` and a free-form ``event_payload`` of strings, numbers and booleans)."""
    return {"event_type": CHANGE_EVENT, "event_payload": {"job_id": job.job_id, "seq": seq}}


def sweep_metadata(sweep_id: str, part: str) -> dict[str, Any]:
    """The metadata of a sweep's own replies (``part``: ``summary``, ``digest-<failures>``)."""
    return {"event_type": SWEEP_EVENT, "event_payload": {"sweep_id": sweep_id, "part": part}}


def _replies(job: Job, seq: int, entry: HistoryEntry) -> bool:
    """Whether a single job's change ``seq`` is told by a thread reply (a note moves nothing
    and tells nobody; an approval's note is told apart)."""
    return not entry.is_note and (notice.replies_to(job, seq) or notice.tells_off_plan(job, seq))


class SlackNotifierStore(JobRepository, RecordStore, Protocol):
    """What the notifiers read and write: the job's thread root and the sweep records."""


class SlackPacer:
    """Keeps this process's Slack calls inside Slack's documented limits (see the module
    docstring): a token bucket per channel for posts, a sliding minute for updates, and a
    minimum interval per updated message."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], object] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self._updates: deque[float] = deque()
        self._reads: deque[float] = deque()
        self._card_at: OrderedDict[str, float] = OrderedDict()

    def before_post(self, channel: str, max_wait: float = MAX_PACING_WAIT) -> None:
        """Take a post's turn in ``channel``, sleeping for it up to ``max_wait`` seconds;
        NotifierUnavailable (and no turn taken) if it would be longer."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(channel, (float(POST_BURST), now))
            tokens = min(float(POST_BURST), tokens + (now - at) * POSTS_PER_SECOND)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / POSTS_PER_SECOND
            if wait > max_wait:
                raise NotifierUnavailable(f"channel {channel} is at Slack's posting pace")
            self._buckets[channel] = (tokens - 1 + wait * POSTS_PER_SECOND, now + wait)
        if wait:
            self._sleep(wait)

    def card_due(self, key: str) -> bool:
        """Whether message ``key`` may be updated now (not within SAME_CARD_SECONDS)."""
        with self._lock:
            last = self._card_at.get(key)
            return last is None or self._clock() - last >= SAME_CARD_SECONDS

    def _take(self, calls: deque[float], per_minute: int, method: str) -> float:
        """One call of a per-minute budget (``calls``: when the last minute's were made), under
        the lock; NotifierUnavailable when the minute's budget is spent."""
        now = self._clock()
        while calls and now - calls[0] >= 60:
            calls.popleft()
        if len(calls) >= per_minute:
            raise NotifierUnavailable(f"{method} is at its per-minute budget")
        calls.append(now)
        return now

    def before_read(self) -> None:
        """A conversations.replies call (Tier 3, its own budget): at most READS_PER_MINUTE."""
        with self._lock:
            self._take(self._reads, READS_PER_MINUTE, "conversations.replies")

    def before_update(self, key: str) -> None:
        with self._lock:
            now = self._take(self._updates, UPDATES_PER_MINUTE, "chat.update")
            self._card_at[key] = now
            self._card_at.move_to_end(key)
            while len(self._card_at) > _ROOT_CACHE:
                self._card_at.popitem(last=False)


class SlackCalls:
    """One Web API call, paced; every way it can fail becomes NotifierUnavailable (or
    NotifierRejected, for what no retry can fix). A failure that says nothing of whether the
    call took effect (the request went out, its answer did not come back: a timeout, a dropped
    connection, a 5xx) is NotifierUncertain: a post may have landed."""

    def __init__(self, client: Any, pacer: SlackPacer) -> None:
        self._client = client
        self.pacer = pacer

    def post(self, channel: str, *, max_wait: float = MAX_PACING_WAIT, **kwargs: Any) -> Any:
        self.pacer.before_post(channel, max_wait if notify_may_wait() else 0.0)
        return self._call("chat_postMessage", channel=channel, **kwargs)

    def update(self, channel: str, ts: str, card: dict[str, Any]) -> None:
        self.pacer.before_update(f"{channel}/{ts}")
        self._call("chat_update", channel=channel, ts=ts, text=card["text"], blocks=card["blocks"])

    def delete(self, channel: str, ts: str) -> None:
        self._call("chat_delete", channel=channel, ts=ts)

    def thread_has(self, channel: str, ts: str, metadata: dict[str, Any]) -> bool:
        """Whether the thread rooted at ``ts`` holds a message carrying ``metadata`` (its
        ``event_type`` and every field of its ``event_payload``): conversations.replies with
        ``include_all_metadata``, page by page. NotifierUnavailable if Slack could not be
        asked ("could not find out" is not "not there"); NotifierRejected if it refuses for
        good (a missing scope, a thread that is gone)."""
        want_type, want = metadata["event_type"], metadata["event_payload"]
        cursor: str | None = None
        for _ in range(MAX_REPLY_PAGES):
            self.pacer.before_read()
            try:
                answer = self._call(
                    "conversations_replies", channel=channel, ts=ts, include_all_metadata=True, limit=REPLIES_PAGE,
                    **({"cursor": cursor} if cursor else {}),
                )
            except NotifierUnavailable as exc:
                if _slack_error(exc.__cause__) in LOOKUP_REFUSALS:
                    raise NotifierRejected(f"Slack conversations.replies refused: {_slack_error(exc.__cause__)}") from exc
                raise NotifierUnavailable(f"could not read thread {channel}/{ts}: {exc}") from exc
            for message in answer.get("messages") or []:
                found = message.get("metadata") or {}
                payload = found.get("event_payload") or {}
                if found.get("event_type") == want_type and all(payload.get(k) == v for k, v in want.items()):
                    return True
            cursor = ((answer.get("response_metadata") or {}).get("next_cursor")) or None
            if not cursor:
                return False
        raise NotifierUnavailable(f"thread {channel}/{ts} has more than {MAX_REPLY_PAGES * REPLIES_PAGE} replies: not read to its end")

    def _call(self, method: str, **kwargs: Any) -> Any:
        from urllib.error import URLError

        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            return getattr(self._client, method)(**kwargs)
        except SlackApiError as exc:
            error = _slack_error(exc)
            if error in PERMANENT_ERRORS:
                raise NotifierRejected(f"Slack {method} refused: {error}") from exc
            status = getattr(exc.response, "status_code", 200) or 200
            if status >= 500:
                raise NotifierUncertain(f"Slack {method} answered {status}: it may have taken effect") from exc
            raise NotifierUnavailable(f"Slack {method} failed: {error}") from exc
        except URLError as exc:
            # urllib wraps what fails before the request is sent whole (refused, unknown name,
            # timed out connecting): Slack never saw it.
            raise NotifierUnavailable(f"Slack {method} could not be reached: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            # Raised while waiting for the answer (a read timeout, a connection reset or
            # closed): the request was sent, and may have taken effect.
            raise NotifierUncertain(f"Slack {method} sent, answer lost: {exc!r}") from exc
        except SlackClientError as exc:
            raise NotifierUnavailable(f"Slack {method} could not be made: {exc}") from exc


def _slack_error(exc: BaseException | None) -> str:
    """The ``error`` of a Slack API answer (``?`` when there is none)."""
    response = getattr(exc, "response", None)
    try:
        return str(response.get("error")) if response is not None else "?"
    except (AttributeError, TypeError):  # a body that is not JSON (a proxy's 502 page)
        return "?"


class SlackNotifier:
    """Root cards, thread replies and sweep summaries (target ``slack``)."""

    name = "slack"
    eager = False
    asks_admins = True  # sends the approval cards (backend.services.notify hands them over otherwise)

    def __init__(
        self,
        calls: SlackCalls,
        store: SlackNotifierStore,
        region: str,
        *,
        now: Callable[[], datetime] | None = None,
        admins: Sequence[str] = (),
    ) -> None:
        self._calls = calls
        self._store = store
        self._region = region
        self._now = now or (lambda: datetime.now(UTC))
        self._admins = sorted(admins)
        # The approval card's estimate: the built-in prices until the composition root wires
        # the cost guard's (price_with).
        self._estimate: Callable[[Sequence[JobArgs]], Estimate] = estimate
        # Roots this process posted, for a job whose stored item does not show its ts yet.
        self._roots: OrderedDict[str, str] = OrderedDict()

    # --- before registration ---------------------------------------------------------------

    def announce(self, job: Job) -> Job:
        """Post a new single job's root card before it is registered; the job, with its thread
        ts and seq 1 delivered, is what gets registered (one write for both). A sweep job or a
        job outside Slack is returned as it is; NotifierUnavailable if the channel is at its
        posting pace (the card then goes out after registration)."""
        if job.slack is None or not job.slack.channel_id or job.sweep_id or job.slack.thread_ts:
            return job
        card = render.job_card(job, self._region)
        # Never a pacing wait here: the registration (and the launch it starts) waits for this
        # post. A channel at its pace gets the card from the delivery after registration. (Not
        # notify_without_waiting: a 429's short Retry-After is still worth waiting for here.)
        answer = self._calls.post(job.slack.channel_id, max_wait=0.0, text=card["text"], blocks=card["blocks"])
        ts = str(answer["ts"])
        self._remember(job.job_id, ts)
        delivered = {**job.delivered, SlackCardNotifier.name: 1}
        if not notice.asks_approval(job, 1):
            # A held job's change 1 is still to tell the admins: the delivery after registration does.
            delivered[self.name] = 1
        from backend.domain.model import SlackThread

        return job.model_copy(update={"slack": SlackThread(channel_id=job.slack.channel_id, thread_ts=ts), "delivered": delivered})

    def withdraw(self, job: Job) -> None:
        """Delete the root card :meth:`announce` posted for a job whose registration failed:
        no Stop button may stay in the channel for a job that does not exist (a retry of the
        same request announces it again)."""
        if job.slack is None or not job.slack.channel_id or not job.slack.thread_ts or job.sweep_id:
            return
        self._roots.pop(job.job_id, None)
        self._calls.delete(job.slack.channel_id, job.slack.thread_ts)

    # --- a change ----------------------------------------------------------------------------

    def price_with(self, estimate_of: Callable[[Sequence[JobArgs]], Estimate]) -> None:
        """Price approval cards with the deployment's estimates (the cost guard's price book)."""
        self._estimate = estimate_of

    def notify(self, job: Job, seq: int) -> None:
        if notice.asks_approval(job, seq):
            self._ask_admins(job, seq)  # whether or not the job has a thread (CLI jobs have none)
        if job.slack is None or not job.slack.channel_id:
            return  # submitted outside Slack (CLI): nothing to tell here
        entry = entry_of(job, seq)
        if entry is None:
            return  # no longer kept: nothing left to tell
        if notice.tells_approval(job, seq):
            self._tell_approved(job, seq)
            return
        if notice.tells_plan_end(job, seq):
            self._warn_plan_end(job, entry)
            return
        if job.sweep_id:
            self._notify_sweep_job(job, entry)
            return
        channel = job.slack.channel_id
        root = self.root_ts(job)
        if entry.to_status is JobStatus.NEW and seq == 1:
            if root is None:
                self._post_root(job, channel)
            return
        if not _replies(job, seq, entry):
            return
        if root is None:
            # The root could not be posted when the job was announced: start a thread now
            # rather than lose the story.
            root = self._post_root(job, channel)
        mention = notice.mentions_owner(job.notify, entry.to_status)
        text = render.thread_reply(job, seq, mention_owner=mention, region=self._region)
        self._calls.post(channel, thread_ts=root, text=text, metadata=change_metadata(job, seq))

    def already_told(self, job: Job, seq: int) -> bool:
        """Whether change ``seq``'s thread reply is in the job's thread already (a send whose
        answer was lost, or a run killed before it recorded the send, may have posted it): its
        metadata names the job and the change. Asked only when the dispatcher doubts, never on
        the normal path. False, with no call to Slack, when the change posts no thread reply
        (or its thread is not known yet): :meth:`notify` then does what it does, and whatever
        else it posts is guarded on its own (a sweep's replies by the sweep's records, the
        admins' cards by theirs). A reply is the last thing :meth:`notify` does for a change,
        so finding it means nothing is left to do. NotifierUnavailable if the thread could not
        be read; NotifierRejected if Slack refuses to let it be read."""
        thread = self._reply_thread(job, seq)
        if thread is None:
            return False
        return self._calls.thread_has(*thread, change_metadata(job, seq))

    def _reply_thread(self, job: Job, seq: int) -> tuple[str, str] | None:
        """(channel, root ts) of the thread reply :meth:`notify` posts for change ``seq`` as
        its last act, if it posts one into a thread already known; None otherwise."""
        entry = entry_of(job, seq)
        if job.slack is None or not job.slack.channel_id or entry is None:
            return None
        if notice.tells_approval(job, seq):
            root = job.slack.thread_ts if job.sweep_id else self.root_ts(job)
        elif job.sweep_id or (entry.to_status is JobStatus.NEW and seq == 1) or not _replies(job, seq, entry):
            return None  # a sweep job's end is told through the sweep's records (see _notify_sweep_job)
        else:
            root = self.root_ts(job)
        return (job.slack.channel_id, root) if root else None

    def _tell_approved(self, job: Job, seq: int) -> None:
        """The owner's thread hears who approved their held job (a sweep: in the sweep's
        thread). A single job whose root card never went out gets it now, as a reply would."""
        assert job.slack is not None and job.approval is not None
        channel = job.slack.channel_id
        root = job.slack.thread_ts if job.sweep_id else self.root_ts(job)
        if root is None:
            if job.sweep_id:
                return  # the sweep's root was never posted: no thread to tell
            root = self._post_root(job, channel)
        text = render.approved_reply(job, job.approval.decided_by or "")
        self._calls.post(channel, thread_ts=root, text=text, metadata=change_metadata(job, seq))

    def _warn_plan_end(self, job: Job, entry: HistoryEntry) -> None:
        """An attempt's one plan-end warning, in the job's thread (a sweep job's: in the sweep's
        thread, naming the job). A single job whose root card never went out gets it now."""
        assert job.slack is not None
        channel = job.slack.channel_id
        root = job.slack.thread_ts if job.sweep_id else self.root_ts(job)
        if root is None:
            if job.sweep_id:
                return  # the sweep's root was never posted: no thread to tell
            root = self._post_root(job, channel)
        self._calls.post(channel, thread_ts=root, text=render.plan_end_warning(job, entry.seq))

    def stalled(self, job: Job, last_line_at: datetime, silent_seconds: float) -> None:
        """A stall warning in the job's thread (:class:`backend.ports.StallNotifier`)."""
        if job.slack is None or not job.slack.channel_id:
            return
        root = self.root_ts(job)
        if root is None:
            return  # no thread to warn in (the card was never posted): the warning is advice
        # Metadata as every thread reply has; no look before a re-post: the monitor's mark
        # (StallWarnedAt) already makes it one warning per silence.
        metadata = {"event_type": STALL_EVENT, "event_payload": {"job_id": job.job_id, "last_line_at": format_utc(last_line_at)}}
        self._calls.post(job.slack.channel_id, thread_ts=root, text=render.stall_warning(job, last_line_at, silent_seconds), metadata=metadata)

    def _post_root(self, job: Job, channel: str) -> str:
        card = render.job_card(job, self._region)
        answer = self._calls.post(channel, text=card["text"], blocks=card["blocks"])
        ts = str(answer["ts"])
        self._remember(job.job_id, ts)
        try:
            self._store.set_thread(job.job_id, channel, ts)
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"root posted but not recorded: {exc}") from exc
        return ts

    def root_ts(self, job: Job) -> str | None:
        if job.slack and job.slack.thread_ts:
            return job.slack.thread_ts
        if job.job_id in self._roots:
            return self._roots[job.job_id]
        try:
            stored = self._store.get(job.job_id)
        except (JobNotFound, StoreUnavailable):
            return None
        return stored.slack.thread_ts if stored.slack else None

    def _remember(self, job_id: str, ts: str) -> None:
        self._roots[job_id] = ts
        while len(self._roots) > _ROOT_CACHE:
            self._roots.popitem(last=False)

    # --- the admins' approval card ----------------------------------------------------------

    def _ask_admins(self, job: Job, seq: int) -> None:
        """Send each admin the approval card for change ``seq`` of held ``job``, once. Each
        admin's ``Told:<admin>`` mark on ``approval#<job id>#<seq>`` is 0 (not told), 1 (told)
        or, while a delivery posts it, minus the epoch second its claim runs out (as a sweep's
        summary: see :meth:`_post_summary`). An admin Slack refuses for good is logged and
        skipped; a failure leaves the change undelivered, and its next delivery goes on with
        the admins not told yet."""
        if not self._admins:
            return
        key = f"{job.job_id}#{seq}"
        try:
            record = self._store.get_record(RecordKind.APPROVAL, key) or {}
            card = render.approval_request(job, self._card_estimate(job))
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"approval card of {job.job_id} not prepared: {exc}") from exc
        now = int(self._now().timestamp())
        for admin in self._admins:
            mark_name = f"Told:{admin}"
            mark = int(record.get(mark_name, 0))
            if mark == 1:
                continue
            if mark < 0 and -mark >= now:
                raise NotifierUnavailable(f"{job.job_id}'s approval card is being sent to {admin} by another delivery")
            claim = -(now + APPROVAL_CLAIM_SECONDS)
            if not self._mark(key, mark_name, mark, claim, now):
                raise NotifierUnavailable(f"{job.job_id}'s approval card to {admin} was claimed meanwhile")
            try:
                self._calls.post(admin, text=card["text"], blocks=card["blocks"])
            except NotifierRejected as exc:
                logger.error("approval card refused for good", extra={"job_id": job.job_id, "admin": admin, "error": str(exc)})
            except NotifierUnavailable:
                self._mark(key, mark_name, claim, 0, now)  # the next delivery sends it
                raise
            if not self._mark(key, mark_name, claim, 1, now):
                raise NotifierUnavailable(f"{job.job_id}'s approval card to {admin} was sent but its claim was taken over")

    def _mark(self, key: str, name: str, expected: int, new: int, now: int) -> bool:
        try:
            return self._store.claim_record_mark(
                RecordKind.APPROVAL, key, name, expected, new, expires_at=now + APPROVAL_RECORD_SECONDS
            )
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"approval card progress not recorded: {exc}") from exc

    def _card_estimate(self, job: Job) -> Estimate:
        """What the card's submission may cost: the job, or for a sweep's card every job of the
        sweep (they differ only in hyperparameters: same type, count and max run time)."""
        jobs = 1
        if job.sweep_id and not (job.approval is not None and job.approval.alone):
            batch = self._store.get_record(RecordKind.SWEEP, job.sweep_id) or {}
            jobs = max(1, sweeps.batch_size(batch))
        return self._estimate([job.job_args] * jobs)

    # --- sweeps ------------------------------------------------------------------------------

    def _notify_sweep_job(self, job: Job, entry: HistoryEntry) -> None:
        if entry.to_status not in TERMINAL or not job.slack or not job.slack.thread_ts:
            return
        assert job.sweep_id is not None
        channel, root = job.slack.channel_id, job.slack.thread_ts
        failure = None
        if entry.to_status is not JobStatus.COMPLETED:
            failure = render.sweep_failure_line(job, entry.seq)
        try:
            counted = self._store.count_sweep_end(job.sweep_id, _sweep_index(job), entry.to_status.value, failure)
            redelivered = counted is None
            if counted is None:
                # Counted before (a redelivery): only an ending whose summary did not go out
                # has anything left to do.
                counted = self._sweep_ends(job.sweep_id)
            record = self._store.get_record(RecordKind.SWEEP_ROOT, job.sweep_id) or {}
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"sweep tally not updated: {exc}") from exc
        if notice.sweep_job_reply(job.notify):
            # Counted first, then told: a redelivery (counted before) knows an earlier delivery
            # may have posted the reply, and looks before posting it again.
            metadata = change_metadata(job, entry.seq)
            if not redelivered or not self._posted(channel, root, metadata):
                self._calls.post(channel, thread_ts=root, text=render.sweep_job_reply(job, entry.seq), metadata=metadata)
        total = int(record.get("Total", 0)) or sum(counted.tally.values())
        name, owner = str(record.get("Name", job.name)), str(record.get("Owner", job.owner.user_id))
        ended = sum(counted.tally.values())
        finished = ended >= total
        if redelivered and (not finished or counted.final):
            return
        if notice.sweep_digests(job.notify) and not finished:
            self._digest(job.sweep_id, channel, root, counted)
        # The sweep's card (its tally) is the slack-card target's: a refused update is retried
        # there, never by delivering this change again (which would post the job's reply twice).
        if finished:
            told = counted.digested if notice.sweep_digests(job.notify) else 0
            failures = counted.failures_from(told)
            results, objective = self._results(job.sweep_id, record)
            summary = render.sweep_summary(
                name, owner, total, counted.tally, failures, results, objective, unlisted=counted.failed - told - len(failures)
            )
            self._post_summary(job.sweep_id, channel, root, summary)

    def _landed(self, channel: str, root: str, metadata: dict[str, Any]) -> bool | None:
        """Right after a post whose answer was lost: whether it is in the thread (None: Slack
        could not be asked)."""
        try:
            return self._posted(channel, root, metadata)
        except NotifierUnavailable:
            return None

    def _posted(self, channel: str, root: str, metadata: dict[str, Any]) -> bool:
        """Whether a message with ``metadata`` is in the thread already; a look Slack refuses for
        good (see LOOKUP_REFUSALS) is logged and answered no: posting again beats never."""
        try:
            return self._calls.thread_has(channel, root, metadata)
        except NotifierRejected as exc:
            logger.error("could not look in the thread before posting again", extra={"thread": f"{channel}/{root}", "error": str(exc)})
            return False

    def _results(self, sweep_id: str, root: dict[str, Any]) -> tuple[list[Job], Objective | None]:
        """The sweep's jobs (from its batch record: read once, when it has ended) and the
        objective its author ranks them by (on its root record)."""
        try:
            batch = self._store.get_record(RecordKind.SWEEP, sweep_id) or {}
            jobs = self._store.get_many(sweeps.batch_job_ids(batch))
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"sweep results not read: {exc}") from exc
        try:
            objective = parse_objective(str(root["Objective"])) if root.get("Objective") else None
        except ValueError:
            objective = None
        return jobs, objective

    def _post_summary(self, sweep_id: str, channel: str, root: str, text: str) -> None:
        """Post the sweep's final summary once. The ``Final`` mark is 0 (not posted), 1
        (posted) or, while one delivery posts it, minus the epoch second its claim runs out:
        a crash between the claim and the post leaves a claim that a later redelivery of the
        change (the change stays undelivered: NotifierUnavailable) takes over once it expires,
        looking in the thread first: the summary carries metadata naming the sweep. A post
        whose answer was lost is looked for at once: found, it is marked posted; not found,
        the claim is given back; if the thread cannot be read, the claim stays."""
        try:
            mark = int((self._store.get_record(RecordKind.SWEEP_ENDS, sweep_id) or {}).get("Final", 0))
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"sweep summary state unknown: {exc}") from exc
        if mark == 1:
            return
        now = int(self._now().timestamp())
        if mark < 0 and -mark >= now:
            raise NotifierUnavailable(f"sweep {sweep_id}'s summary is being posted by another delivery")
        claim = -(now + SUMMARY_CLAIM_SECONDS)
        if not self._store.claim_sweep_mark(sweep_id, "Final", mark, claim):
            raise NotifierUnavailable(f"sweep {sweep_id}'s summary was claimed meanwhile")
        metadata = sweep_metadata(sweep_id, "summary")
        if mark < 0 and self._posted(channel, root, metadata):
            self._store.claim_sweep_mark(sweep_id, "Final", claim, 1)  # the delivery whose claim ran out had posted it
            return
        try:
            self._calls.post(channel, thread_ts=root, text=text, metadata=metadata)
        except NotifierUncertain:
            landed = self._landed(channel, root, metadata)
            if landed:
                self._store.claim_sweep_mark(sweep_id, "Final", claim, 1)
                return
            if landed is False:
                self._store.claim_sweep_mark(sweep_id, "Final", claim, 0)  # the next redelivery posts it
            raise  # could not look: the claim stays, and whoever takes it over looks first
        except NotifierUnavailable:
            self._store.claim_sweep_mark(sweep_id, "Final", claim, 0)  # the next redelivery posts it
            raise
        self._store.claim_sweep_mark(sweep_id, "Final", claim, 1)

    def _sweep_ends(self, sweep_id: str) -> SweepEnd:
        record = self._store.get_record(RecordKind.SWEEP_ENDS, sweep_id) or {}
        return SweepEnd(
            tally={str(k): int(v) for k, v in (record.get("Tally") or {}).items()},
            failures=[str(f) for f in record.get("Failures") or []],
            digested=int(record.get("Digested", 0)),
            final=int(record.get("Final", 0)) == 1,  # posted (a claim is negative: see _post_summary)
            failures_before=int(record.get("FailuresBefore", 0)),
        )

    def _digest(self, sweep_id: str, channel: str, root: str, counted: SweepEnd) -> None:
        """Every DIGEST_EVERY failures, one reply lists them (claimed once across processes).
        Failures are numbered from the sweep's first, whatever the record still lists.
        A post whose answer was lost is looked for at once: given back (posted by a later
        failure's delivery) only if it is not in the thread."""
        digested = counted.digested
        upto = counted.failed - counted.failed % notice.DIGEST_EVERY
        if upto <= digested or not self._store.claim_sweep_mark(sweep_id, "Digested", digested, upto):
            return
        lines = counted.failures_from(digested)[: upto - max(digested, counted.failures_before)]
        metadata = sweep_metadata(sweep_id, f"digest-{upto}")
        try:
            self._calls.post(channel, thread_ts=root, text=render.sweep_digest(lines, upto), metadata=metadata)
        except NotifierUncertain:
            landed = self._landed(channel, root, metadata)
            if landed:
                return
            if landed is False:
                self._store.claim_sweep_mark(sweep_id, "Digested", upto, digested)
            # Could not look: the claim stays (never twice; its failures are on their cards,
            # on SNS, and not in the summary).
            raise
        except NotifierUnavailable:
            self._store.claim_sweep_mark(sweep_id, "Digested", upto, digested)
            raise


def _sweep_index(job: Job) -> int:
    """The job's number within its sweep (its client token is ``<sweep id>/<index>``)."""
    index = notice.sweep_index(job)
    if index is None:
        raise NotifierRejected(f"{job.job_id} has no index in sweep {job.sweep_id}")
    return index


class SlackCardNotifier:
    """``chat.update`` of a job's root card with its latest state (target ``slack-card``):
    idempotent, so safe to send eagerly, and coalesced to the newest change. A sweep job's end
    updates the sweep's card with its tally, once the replies notifier has counted that end."""

    name = "slack-card"
    eager = True

    def __init__(self, calls: SlackCalls, roots: SlackNotifier, region: str, *, store: SlackNotifierStore) -> None:
        self._calls = calls
        self._roots = roots
        self._region = region
        self._store = store

    def notify(self, job: Job, seq: int) -> None:
        if job.slack is None or not job.slack.channel_id:
            return
        if job.sweep_id:
            self._sweep_card(job, seq)
            return
        if seq < job.last_seq:
            return  # coalesced: the newest change's card shows this one's outcome too
        root = self._roots.root_ts(job)
        if root is None:
            raise NotifierUnavailable("the job's root card is not posted yet")
        self._calls.update(job.slack.channel_id, root, render.job_card(job, self._region))

    def _sweep_card(self, job: Job, seq: int) -> None:
        """The sweep's card with the tally that counts this job's end. Intermediate tallies
        are paced (SAME_CARD_SECONDS) and a refused one is skipped, since a later end shows a
        newer one; the last end's card must land, so its refusal keeps the change pending for
        this target alone."""
        entry = entry_of(job, seq)
        index = notice.sweep_index(job)
        if entry is None or entry.to_status not in TERMINAL or index is None or job.slack is None or not job.slack.thread_ts:
            return
        assert job.sweep_id is not None
        try:
            ends = self._store.get_record(RecordKind.SWEEP_ENDS, job.sweep_id) or {}
            record = self._store.get_record(RecordKind.SWEEP_ROOT, job.sweep_id) or {}
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"sweep tally not read: {exc}") from exc
        if index not in {int(i) for i in ends.get("Counted") or []}:
            raise NotifierUnavailable(f"{job.job_id}'s end is not counted yet: the card waits for its reply's delivery")
        tally = {str(k): int(v) for k, v in (ends.get("Tally") or {}).items()}
        total = int(record.get("Total", 0)) or sum(tally.values())
        finished = sum(tally.values()) >= total
        channel, root = job.slack.channel_id, job.slack.thread_ts
        if not finished and not self._calls.pacer.card_due(f"{channel}/{root}"):
            return
        name, owner = str(record.get("Name", job.name)), str(record.get("Owner", job.owner.user_id))
        try:
            self._calls.update(channel, root, render.sweep_root(name, owner, job.sweep_id, total, tally))
        except NotifierUnavailable:
            if finished:
                raise


def build_slack_notifiers(
    settings: Settings,
    store: SlackNotifierStore,
    *,
    clock: Callable[[], datetime] | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> list[Any]:
    """The notifiers the composition root wires when a bot token (or its secret) is
    configured: replies first, then the card (the dispatcher delivers in this order). Pacing
    runs on ``clock`` (Trainbot's clock; real time by default) and waits with ``sleep``, which
    must move that clock (time.sleep for real time; a simulated clock's own advance)."""
    from backend.adapters.slack.client import LazyWebClient

    pacer = SlackPacer(clock=(lambda: clock().timestamp()) if clock else time.monotonic, sleep=sleep)
    calls = SlackCalls(LazyWebClient(settings, purpose="notify"), pacer)
    replies = SlackNotifier(calls, store, settings.aws_region, now=clock, admins=sorted(settings.admin_users))
    return [replies, SlackCardNotifier(calls, replies, settings.aws_region, store=store)]


def build_slack_notifier(settings: Settings, store: SlackNotifierStore) -> SlackNotifier:
    """Only the replies notifier (tests that look at one part)."""
    notifier: SlackNotifier = build_slack_notifiers(settings, store)[0]
    return notifier
