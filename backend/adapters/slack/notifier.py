"""The Slack notifier: a job's story, told in its own Slack thread.

It implements the ``Notifier`` port (``name`` and ``notify(job, seq)``) the dispatcher calls for
every undelivered status change, in order:

- seq 1 (submitted): post the job's root card with ``chat.postMessage`` and store its ``ts``
  (``store.set_thread``); a job that already has a root (a redelivery) posts nothing.
- later changes: a reply in the thread (``thread_ts`` = the root) and, for the newest change,
  ``chat.update`` of the root card, so the card always shows the latest status.
- sweep jobs share the sweep's root: only terminal changes get a reply, and the sweep root's
  tally is counted (once per change) and re-rendered.

Anything Slack cannot take now (``ok: false``, a 429 the retry handler gave up on, a 5xx, a
connection error) raises :class:`NotifierUnavailable`: the change stays in the outbox and is
delivered later, so a Slack outage delays messages but loses none and never blocks a job.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from backend.config import Settings
from backend.domain.model import Job
from backend.domain.records import RecordKind
from backend.domain.status import TERMINAL, JobStatus
from backend.errors import JobNotFound, NotifierRejected, NotifierUnavailable, StoreUnavailable
from backend.ports import JobRepository, RecordStore
from backend.adapters.slack import render

logger = Logger(service="trainbot", child=True)

TALLIED = RecordKind.TALLIED
# Slack errors that no retry can fix: the message is given up (logged), not kept forever.
PERMANENT_ERRORS = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "msg_too_long", "invalid_blocks", "no_permission", "account_inactive"}
)
_ROOT_CACHE = 1024


class SlackNotifierStore(JobRepository, RecordStore, Protocol):
    """What the notifier reads and writes: the job's thread root and the sweep records."""


class SlackNotifier:
    """:class:`backend.ports.Notifier` over a ``slack_sdk.WebClient``."""

    name = "slack"

    def __init__(self, client: Any, store: SlackNotifierStore, region: str) -> None:
        self._client = client
        self._store = store
        self._region = region
        # Roots this process posted: the dispatcher hands us the job as read before seq 1 was
        # delivered, so later seqs of the same delivery round would not see the new ts.
        self._roots: OrderedDict[str, str] = OrderedDict()

    def notify(self, job: Job, seq: int) -> None:
        if job.slack is None or not job.slack.channel_id:
            return  # submitted outside Slack (CLI): nothing to tell here
        if job.sweep_id:
            self._notify_sweep_job(job, seq)
            return
        entry = job.history[seq - 1]
        channel = job.slack.channel_id
        root = self._root_ts(job)
        if entry.to_status is JobStatus.NEW and seq == 1:
            if root is None:
                self._post_root(job, channel)
            return
        if root is None:
            # The root could not be posted (seq 1 is delivered first, so this is a job that
            # had its root removed); start a thread now rather than lose the story.
            root = self._post_root(job, channel)
        self._call("chat_postMessage", channel=channel, thread_ts=root, text=render.thread_reply(job, seq))
        if seq == job.last_seq:
            card = render.job_card(job, self._region)
            self._call("chat_update", channel=channel, ts=root, text=card["text"], blocks=card["blocks"])

    def _post_root(self, job: Job, channel: str) -> str:
        card = render.job_card(job, self._region)
        answer = self._call("chat_postMessage", channel=channel, text=card["text"], blocks=card["blocks"])
        ts = str(answer["ts"])
        self._remember(job.job_id, ts)
        try:
            self._store.set_thread(job.job_id, channel, ts)
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"root posted but not recorded: {exc}") from exc
        return ts

    def _root_ts(self, job: Job) -> str | None:
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

    def _notify_sweep_job(self, job: Job, seq: int) -> None:
        entry = job.history[seq - 1]
        if entry.to_status not in TERMINAL or not job.slack or not job.slack.thread_ts:
            return
        channel, root = job.slack.channel_id, job.slack.thread_ts
        marker = f"{job.job_id}:{seq}"
        try:
            # The marker is written after the reply and the tally: a change that has one was
            # told already, and a redelivery of it only re-renders the root card.
            told = self._store.get_record(TALLIED, marker) is not None
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"sweep tally not read: {exc}") from exc
        if not told:
            self._call("chat_postMessage", channel=channel, thread_ts=root, text=render.sweep_job_reply(job, seq))
        try:
            if not told:
                tally = self._store.bump_sweep_tally(job.sweep_id, entry.to_status.value)
                self._store.put_record(TALLIED, marker, {"ExpiresAt": int(entry.at.timestamp()) + 90 * 86400})
            else:
                tally = self._current_tally(job.sweep_id)
            record = self._store.get_record(RecordKind.SWEEP_ROOT, job.sweep_id) or {}
        except StoreUnavailable as exc:
            raise NotifierUnavailable(f"sweep tally not updated: {exc}") from exc
        total = int(record.get("Total", 0)) or sum(tally.values())
        card = render.sweep_root(str(record.get("Name", job.name)), job.owner.user_id, job.sweep_id, total, tally)
        self._call("chat_update", channel=channel, ts=root, text=card["text"], blocks=card["blocks"])

    def _current_tally(self, sweep_id: str) -> dict[str, int]:
        record = self._store.get_record(RecordKind.SWEEP, sweep_id) or {}
        return {str(k): int(v) for k, v in (record.get("Tally") or {}).items()}

    def _call(self, method: str, **kwargs: Any) -> Any:
        """One Web API call; every way it can fail becomes NotifierUnavailable."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            return getattr(self._client, method)(**kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else "?"
            if error in PERMANENT_ERRORS:
                raise NotifierRejected(f"Slack {method} refused: {error}") from exc
            raise NotifierUnavailable(f"Slack {method} failed: {error}") from exc
        except (SlackClientError, OSError) as exc:  # URLError, timeouts, refused connections
            raise NotifierUnavailable(f"Slack {method} could not be reached: {exc}") from exc


def build_slack_notifier(settings: Settings, store: SlackNotifierStore) -> SlackNotifier:
    """The notifier the composition root wires when a bot token (or its secret) is configured."""
    from backend.adapters.slack.client import web_client

    return SlackNotifier(web_client(settings, purpose="notify"), store, settings.aws_region)
