"""Who hears what about a job: the notification policy a team would choose.

The root card always shows the latest state (it is updated, never re-posted). Thread replies
are for what a person acts on or wants to know. The card names its owner as every message
names people (a mention: Slack tells them once, when the card is posted; its updates notify
nobody), and the reply that ends the job mentions them again; no other reply does. A sweep has
one card with a live tally, failures grouped into digest replies, and one final summary that
mentions its owner. ``notify=`` (per job or sweep) moves the line:

- ``all``: a reply for every change (a sweep: one per job that ends), mention at the end;
- (unset) the team default: replies for Retrying, Failed, Stopped and Completed;
- ``failures``: replies only for Retrying, Failed and Stopped (a success is on the card only);
- ``end``: one reply when the job ends (a sweep: only the final summary).

A retry for capacity or quota (and, with a fallback list, the launch on another type that
follows it) is nobody's to act on: Trainbot waits and retries for free. It is on the card, in
one line that changes, not in the thread (but for ``notify=all``): a job with no capacity
anywhere would otherwise post two replies a minute until its wait runs out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from backend.domain.approval import ApprovalState
from backend.domain.status import TERMINAL, JobStatus
from backend.domain.terms import FailureClass, NotifyMode

if TYPE_CHECKING:
    from backend.domain.model import Job

__all__ = ["NotifyMode"]  # re-exported: the option's values live with the job model

S = JobStatus


_DEFAULT_REPLIES = frozenset({S.RETRYING, S.FAILED, S.STOPPED, S.COMPLETED})
_FAILURE_REPLIES = frozenset({S.RETRYING, S.FAILED, S.STOPPED})
# A sweep's failure digest is posted for every this many failed jobs (the rest are in the
# final summary).
DIGEST_EVERY = 10
# The failure lines a sweep's end record keeps (its newest; the record counts the rest): a
# 10,000-job sweep's record stays a few KB, and the summary names at most this many anyway.
# The record holds up to twice this many between two trims.
SWEEP_FAILURES_KEPT = 20


def wants_reply(mode: NotifyMode | None, status: JobStatus) -> bool:
    """Whether a single job's change to ``status`` gets a thread reply."""
    if status is S.NEW:
        return False  # the root card is the announcement
    if mode is NotifyMode.ALL:
        return True
    if mode is NotifyMode.FAILURES:
        return status in _FAILURE_REPLIES
    if mode is NotifyMode.END:
        return status in TERMINAL
    return status in _DEFAULT_REPLIES


def replies_to(job: Job, seq: int) -> bool:
    """Whether a single job's change ``seq`` gets a thread reply: :func:`wants_reply`, but a
    retry for capacity or quota is told on the card only (unless ``notify=all``)."""
    entry = job.entry(seq)
    if entry is None or not wants_reply(job.notify, entry.to_status):
        return False
    if entry.to_status is S.RETRYING and job.notify is not NotifyMode.ALL:
        return not waits_for_capacity(job, seq)
    return True


_CAPACITY = frozenset({FailureClass.CAPACITY, FailureClass.QUOTA})


def waits_for_capacity(job: Job, seq: int) -> bool:
    """Whether change ``seq`` is a retry because the attempt before it found no capacity or
    quota (a free retry: the job waits for room, on any of its types)."""
    entry = job.entry(seq)
    if entry is None or entry.to_status is not S.RETRYING:
        return False
    ended = [a for a in job.attempts if a.claimed_at <= entry.at]
    return bool(ended) and ended[-1].failure_class in _CAPACITY


def tells_off_plan(job: Job, seq: int) -> bool:
    """Whether change ``seq`` is the start of an attempt created on a training plan that
    SageMaker runs elsewhere (``Attempt.off_plan``): its thread is told, whatever ``notify=``."""
    entry = job.entry(seq)
    if entry is None or entry.to_status is not S.IN_PROGRESS:
        return False
    attempts = [a for a in job.attempts if a.claimed_at <= entry.at]
    return bool(attempts and attempts[-1].off_plan)


def tells_plan_end(job: Job, seq: int) -> bool:
    """Whether change ``seq`` is the note of a plan-end warning: the monitor writes the note and
    the attempt's ``plan_end_warned_at`` in one write with one time, which ties them without
    reading the note's words. Its thread is told, whatever ``notify=`` asks (it is something
    to act on: save a checkpoint, or ask for the plan to be extended)."""
    entry = job.entry(seq)
    if entry is None or not entry.is_note:
        return False
    return any(a.plan_end_warned_at == entry.at for a in job.attempts)


def mentions_owner(mode: NotifyMode | None, status: JobStatus) -> bool:
    """Whether that reply @-mentions the owner: only the one that ends the job (the card, posted
    once, names them too)."""
    return status in TERMINAL and wants_reply(mode, status)


def sweep_job_reply(mode: NotifyMode | None) -> bool:
    """Whether each ended job of a sweep gets its own reply (only with ``notify=all``)."""
    return mode is NotifyMode.ALL


def sweep_digests(mode: NotifyMode | None) -> bool:
    """Whether a sweep's failures are grouped into digest replies (not with ``end``)."""
    return mode is not NotifyMode.END


# --- when a change must be delivered -------------------------------------------------------------
#
# Each delivery round costs one write (the delivered marks), so rounds are coalesced: a change
# someone acts on (Retrying, an end) or asked to hear about (``notify=all``) is *urgent* and
# delivered by its writer at once, holding a delivery lease folded into the transition write
# itself; any other change (New, Launched, InProgress, Stopping) waits to be told with the next
# urgent one, or by the outbox drain once the job has been quiet for COALESCE (a job still
# queued waits up to QUEUED_HOLD: a 2,000-job sweep's "New" changes are told when each job
# starts or ends, not 2,000 at once). Idempotent effects (the root card's ``chat.update``) are
# sent eagerly and need no mark, so Slack users see every state at once all the same.

DELIVERY_LEASE = timedelta(seconds=60)
# The longest one notifier call may take (its clients' timeouts and bounded retries: SNS at most
# 4 attempts of 5 + 10 s, a Slack call 3 tries of 5 s and 5 s waits). A delivery lease that ran
# out less than this ago may still have its holder's last send in flight, so no other dispatcher
# (nor a transition's writer) takes it over before then: a send slower than the lease is never
# made again by a second dispatcher while the first one's is still under way.
SEND_BOUND = timedelta(minutes=2)
COALESCE = timedelta(minutes=5)
QUEUED_HOLD = timedelta(days=1)
_URGENT = frozenset({S.RETRYING}) | TERMINAL


# A round that failed (a notifier unavailable) leaves its job due again after this, doubling
# with how long the change has waited (up to RETRY_MAX): a sink that keeps failing for some
# jobs costs a few writes an hour each, and never stands in front of a later job's change.
RETRY_MIN = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=1)


def retry_due(job: Job, now: datetime) -> datetime:
    """When the drain tries again after a failed round at ``now`` (``job`` as it was read)."""
    waited = max(now - job.updated_at, timedelta(0))
    return now + min(RETRY_MAX, max(RETRY_MIN, waited))


def pending_seqs(job: Job, targets: Sequence[str]) -> range:
    """The changes some target has not had yet."""
    if not targets:
        return range(0)
    first = min(job.delivered.get(target, 0) for target in targets) + 1
    return range(first, job.last_seq + 1)


def sweep_index(job: Job) -> int | None:
    """The job's number within its sweep (its client token is ``<sweep id>/<index>``); None
    for a job outside a sweep, or one whose token does not say."""
    token = job.client_token or ""
    tail = token.rsplit("/", 1)[-1]
    if job.sweep_id and token.startswith(f"{job.sweep_id}/") and tail.isdigit():
        return int(tail)
    return None


def carries_approval_card(job: Job) -> bool:
    """Whether the admins' approval card goes out with ``job``: a held single job, or a held
    sweep's first job, whose card stands for the whole sweep (an admin's press goes over every
    job still held): a 2,000-job held sweep asks once, not 2,000 times. A sweep job held on
    its own (its retry went past the budget: ``Approval.alone``) carries its own card: the
    sweep's card may be long decided, and nobody would be asked."""
    if not job.is_held:
        return False
    return not job.sweep_id or sweep_index(job) == 0 or (job.approval is not None and job.approval.alone)


def asks_approval(job: Job, seq: int) -> bool:
    """Whether delivering change ``seq`` asks the admins (the approval card, by DM): the change
    that put a job carrying the card on hold, i.e. its latest move into the status it waits in
    (``New`` when submitted, ``Retrying`` when re-held: stopped while held and retried, or an
    automatic retry past the budget). A job no longer held (decided, stopped) asks nothing."""
    if not carries_approval_card(job):
        return False
    for entry in reversed(job.history):
        if entry.to_status is job.status and not entry.is_note:
            return entry.seq == seq
    return False


def tells_approval(job: Job, seq: int) -> bool:
    """Whether change ``seq`` is the note of the admin's approval that released ``job``: its
    delivery tells the owner's thread who approved it (the one way that reply is sent, so a
    rate-limited post is sent again by the outbox, never lost). The note and the decision are
    one write with one time, which ties them without reading the note's words. A sweep's
    thread is told once, by its first job, whose card stood for the sweep."""
    entry = job.entry(seq)
    approval = job.approval
    if entry is None or not entry.is_note or approval is None or approval.state is not ApprovalState.APPROVED:
        return False
    if job.sweep_id and sweep_index(job) != 0:
        return False
    return approval.decided_at == entry.at


def is_urgent(job: Job, targets: Sequence[str]) -> bool:
    """Whether ``job`` has a pending change to deliver now rather than with a later round."""
    if job.slack is not None and job.slack.channel_id and not job.slack.thread_ts and not job.sweep_id:
        # Its root card could not be posted when it was announced: post it soon, not in a day.
        return bool(pending_seqs(job, targets))
    kept = {entry.seq: entry.to_status for entry in job.history}
    for seq in pending_seqs(job, targets):
        status = kept.get(seq)
        if status is None:
            continue
        if status in _URGENT or (job.notify is NotifyMode.ALL and status is not S.NEW):
            return True
        if asks_approval(job, seq):
            return True  # the admins' card: a held job waits for them (only a sweep's card job)
        if tells_approval(job, seq):
            return True  # the owner waits to hear that their job may start
        if tells_plan_end(job, seq):
            return True  # a warning is worth nothing once the plan has ended
    return False


def delivery_due(job: Job, targets: Sequence[str]) -> datetime | None:
    """When the outbox drain may deliver ``job``'s pending changes (None: nothing pending).
    Urgent: once its writer's lease may be taken over (SEND_BOUND after it ran out); otherwise
    COALESCE after its last change (a queued job: QUEUED_HOLD after it was submitted)."""
    if not pending_seqs(job, targets):
        return None
    if is_urgent(job, targets):
        return job.updated_at + DELIVERY_LEASE + SEND_BOUND
    if job.status is S.NEW:
        return job.created_at + QUEUED_HOLD
    # Quiet since its last change, not its last write: a running job's live metrics are written
    # every few minutes, and counted from them its Launched would wait until the job ended.
    last_change = job.history[-1].at if job.history else job.updated_at
    return last_change + COALESCE


def taken_over(job: Job, targets: Sequence[str]) -> Job:
    """``job`` as read by whoever takes over a delivery lease its holder never gave back (a
    round killed between a send and the write that records it, or one that could not write):
    that holder may have sent any change up to ``job``'s last to any target, so each target's
    pending changes up to there are in doubt (``Job.doubts``). The stores answer this from the
    lease the taking write found, with no write of their own."""
    doubts = dict(job.doubts or {})
    for target in sorted({*targets, *job.delivered}):
        if job.delivered.get(target, 0) < job.last_seq:
            doubts[target] = max(doubts.get(target, 0), job.last_seq)
    return job.model_copy(update={"doubts": doubts or None})
