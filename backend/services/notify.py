"""Notification dispatch through the outbox on the job item.

Each status change is a history entry with a sequence number; each notifier target (SNS, the
Slack replies, the Slack card) has a "delivered up to" number on the item, so every part of a
delivery is recorded separately: a refused card update never makes a reply be posted again.

Delivery rounds, and what they cost (:mod:`backend.domain.notice` has the rules):

- an *urgent* change (Retrying, an end, anything with ``notify=all``) is delivered by the
  writer of the transition at once. Its transition write took the job's delivery lease itself
  (:meth:`backend.ports.OutboxStore.holds_delivery`), so the round costs one write: the
  delivered marks (which also take the job out of the ``Outbox`` index);
- any other change is *deferred*: told with the next urgent one, or by the drain once the job
  has been quiet a while. Notifiers whose effect is idempotent (``eager``: the Slack card) get
  the newest change at once anyway, with no write;
- the monitor's sweep drains what is due (a writer that crashed, a notifier that was down, a
  quiet job's deferred changes): it takes the lease with a write, delivers, records.

Each change reaches each notifier once: a round starts a send only with ``LEASE_MARGIN`` of
its lease left, and when less is left it first records what it sent so far and extends the
lease in one conditional write on its token (:meth:`backend.ports.OutboxStore.extend_delivery`);
a lost lease ends the round. Nobody takes over a lease until ``notice.SEND_BOUND`` after it ran
out, so a send slower than the lease (a publish with its retries) is never made a second time
while it is still under way.

What no lease can prevent, a send that landed but whose landing was never recorded, is "in
doubt" (``Job.doubts``: per notifier, the last change that may have reached it):

- the send's answer was lost (a timeout, a dropped connection, a 5xx: the notifier raised
  :class:`backend.errors.NotifierUncertain`): the round records the doubt in the write it makes
  anyway (the delivered marks);
- the round was killed after a send and before that write: its lease stays on the item, and
  whoever takes it over reads its changes in doubt from the taking write's own answer
  (:func:`backend.domain.notice.taken_over`).

A notifier that can look (:class:`backend.ports.CheckingNotifier`: each Slack thread reply
carries metadata naming its job and change) is asked before a change in doubt is sent: found,
the change is recorded as delivered without a second post (``DeliveryReport.confirmed``); not
found, it is sent; could not look, it stays pending, still in doubt. None of it costs a write or
a call on the normal path. SNS cannot look: its duplicate carries the same ``<JobId>#<seq>``
key (``dedupKey``) for its subscribers.

A held job's change asks the admins (:func:`backend.domain.notice.asks_approval`: the Slack
notifier sends them the approval card). A writer whose process has no notifier that can ask
them (the CLI without a Slack token) delivers what it can and leaves the job in the outbox, due
at once, for the drain of the deployment's own notifiers (the monitor's sweep).
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from backend.domain import notice
from backend.errors import NotifierRejected, NotifierUnavailable, NotifierUncertain, StoreUnavailable, TrainbotError
from backend.ports import Notifier, OutboxStore

if TYPE_CHECKING:
    from backend.domain.model import Job

logger = Logger(service="trainbot", child=True)

DELIVERY_LEASE = notice.DELIVERY_LEASE
SEND_BOUND = notice.SEND_BOUND
# A delivery round starts no send with less than this of its lease left without extending the
# lease first: the write that records a send must land before anyone may take the lease over.
LEASE_MARGIN = timedelta(seconds=30)
# Rounds a delivery runs again at once for changes written while it held the lease (bounded:
# a job that keeps changing leaves the rest to the drain).
NEWER_ROUNDS = 2


# A drain stops after this many rounds that failed (each cost two writes: lease and marks).
FAILED_ROUNDS_PER_DRAIN = 25


def takeover_point(now: datetime) -> datetime:
    """A lease that ran out before this may be taken: its holder's last send is over."""
    return now - SEND_BOUND


@dataclass
class DeliveryReport:
    sent: int = 0
    pending: int = 0
    rejected: int = 0  # refused for good (see NotifierRejected): logged, not retried
    busy: int = 0  # another dispatcher held the job's delivery lease
    deferred: int = 0  # rounds left for later (nothing urgent): see backend.domain.notice
    confirmed: int = 0  # changes in doubt found already told (looked for, not sent again)
    failures: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Delivers each job's undelivered status changes to every notifier, in order."""

    def __init__(self, store: OutboxStore, notifiers: Sequence[Notifier], clock: Callable[[], datetime]) -> None:
        self._store = store
        self._notifiers = list(notifiers)
        self._clock = clock
        # Everything this dispatcher did since the last take_totals(): for the handlers' metrics.
        self._totals = DeliveryReport()
        self._on_end: list[Callable[[Job], object]] = []
        self._asks_admins = any(getattr(n, "asks_admins", False) for n in self._notifiers)

    def on_end(self, callback: Callable[[Job], object]) -> None:
        """Call ``callback`` with every job that reached a terminal status, whoever wrote it
        (launcher, monitor, job service, an admin's reject): every writer hands its write to
        :meth:`deliver`, and the drain delivers what a crashed writer left. The callback must
        be idempotent (a budget's release is: its reservation token is given back once)."""
        self._on_end.append(callback)

    def _ended(self, job: Job) -> None:
        if not job.is_terminal:
            return
        for callback in self._on_end:
            try:
                callback(job)
            except StoreUnavailable as exc:  # the change's delivery must not wait for it
                logger.warning("end hook failed", extra={"job_id": job.job_id, "error": str(exc)})

    def take_totals(self) -> DeliveryReport:
        """What was sent, left pending and rejected since the last call (then reset)."""
        totals, self._totals = self._totals, DeliveryReport()
        return totals

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(n.name for n in self._notifiers)

    def announce(self, job: Job) -> Job:
        """Before a new job is registered: notifiers that can tell of it now (the Slack root
        card) do, and the job comes back with what they recorded (its thread, seq 1 delivered),
        so the registration writes it all at once. Failures leave the job as it was: the
        change is then delivered after registration, as any other."""
        for notifier in self._notifiers:
            announce = getattr(notifier, "announce", None)
            if announce is None:
                continue
            try:
                job = announce(job)
            except (NotifierUnavailable, NotifierRejected) as exc:
                logger.warning("announcement deferred", extra={"job_id": job.job_id, "notifier": notifier.name, "error": str(exc)})
        return job

    def withdraw(self, job: Job) -> None:
        """Take back what :meth:`announce` posted for ``job`` when it was not registered after
        all. Best effort: a notifier that cannot is logged (its card then names a job that does
        not exist, as before this existed)."""
        for notifier in self._notifiers:
            withdraw = getattr(notifier, "withdraw", None)
            if withdraw is None:
                continue
            try:
                withdraw(job)
            except (NotifierUnavailable, NotifierRejected) as exc:
                logger.warning("announcement not withdrawn", extra={"job_id": job.job_id, "notifier": notifier.name, "error": str(exc)})

    def deliver(self, job: Job, report: DeliveryReport | None = None) -> DeliveryReport:
        """Right after a write of ``job``: deliver its pending changes if one is urgent, else
        only refresh what is idempotent. Never raises for a notifier failure."""
        self._ended(job)
        return self._counted(report or DeliveryReport(), lambda r: self._deliver(job, r))

    def _counted(self, report: DeliveryReport, run: Callable[[DeliveryReport], DeliveryReport]) -> DeliveryReport:
        before = (report.sent, report.pending, report.rejected, report.confirmed)
        try:
            return run(report)
        finally:
            self._totals.sent += report.sent - before[0]
            self._totals.pending += report.pending - before[1]
            self._totals.rejected += report.rejected - before[2]
            self._totals.confirmed += report.confirmed - before[3]

    def _deliver(self, job: Job, report: DeliveryReport, *, again: int = 0) -> DeliveryReport:
        if not self._notifiers or not notice.pending_seqs(job, self.targets):
            return report
        now = self._clock()
        if not notice.is_urgent(job, self.targets):
            self._refresh_eagerly(job)
            report.deferred += 1
            return report
        if self._store.holds_delivery(job):
            # The lease was taken by the transition write itself, and runs from that write, not
            # from now: whatever the writer did in between (a slow store call) came off it.
            current, token, until = job, f"v{job.version}", job.updated_at + DELIVERY_LEASE
        else:
            token = secrets.token_hex(8)
            try:
                taken = self._store.acquire_delivery(job.job_id, token, takeover_point(now), now + DELIVERY_LEASE)
            except StoreUnavailable:
                report.pending += 1
                return report
            if taken is None:
                report.busy += 1
                return report
            current, until = taken, now + DELIVERY_LEASE
        self._send(current, token, until, report, hand_over_asks=not self._asks_admins, again=again)
        return report

    def refresh(self, job: Job) -> None:
        """After a write that changed what a job's card shows but not its status (why it
        waits): idempotent notifiers (the card) show it now, within their own pacing; nothing
        is recorded. Never raises for a notifier failure (the card catches up with the next
        change)."""
        for notifier in self._notifiers:
            if getattr(notifier, "eager", False):
                try:
                    notifier.notify(job, job.last_seq)
                except (NotifierUnavailable, NotifierRejected) as exc:
                    logger.info("card refresh skipped", extra={"job_id": job.job_id, "notifier": notifier.name, "error": str(exc)})

    def _refresh_eagerly(self, job: Job) -> None:
        """Idempotent notifiers (the card) show the newest change now; nothing is recorded, so
        the round that later delivers the change sends it again (harmlessly)."""
        for notifier in self._notifiers:
            if getattr(notifier, "eager", False) and job.delivered.get(notifier.name, 0) < job.last_seq:
                try:
                    notifier.notify(job, job.last_seq)
                except (NotifierUnavailable, NotifierRejected) as exc:
                    logger.info("eager refresh skipped", extra={"job_id": job.job_id, "notifier": notifier.name, "error": str(exc)})

    def _send(
        self, current: Job, token: str, lease_until: datetime, report: DeliveryReport, *, hand_over_asks: bool = False, again: int = 0
    ) -> bool:
        """One round under the lease ``token``; whether a notifier failed (the job then backs
        off: :func:`backend.domain.notice.retry_due`). ``hand_over_asks``: a change that asks
        the admins stays in the outbox, due now, for the drain (see the module docstring).
        A change in doubt (``Job.doubts``) for a notifier that can look
        (:class:`backend.ports.CheckingNotifier`) is looked for first: found, it is recorded
        without being sent again."""
        asks = hand_over_asks and any(notice.asks_approval(current, seq) for seq in notice.pending_seqs(current, self.targets))
        delivered = dict(current.delivered)
        doubts = dict(current.doubts or {})
        failed = False
        for notifier in self._notifiers:
            look = getattr(notifier, "already_told", None)
            if look is None:
                doubts.pop(notifier.name, None)  # nothing it could do with them: it resends
            for seq in range(delivered.get(notifier.name, 0) + 1, current.last_seq + 1):
                if current.entry(seq) is None:
                    delivered[notifier.name] = seq  # compacted away before it could be sent
                    continue
                kept = self._lease_for_a_call(current, token, delivered, lease_until)
                if kept is None:
                    report.pending += 1
                    return failed
                lease_until = kept
                if look is not None and seq <= doubts.get(notifier.name, 0):
                    try:
                        told = look(current, seq)
                    except NotifierRejected as exc:
                        # It can never look (a scope the app lacks): sending again beats never.
                        logger.error(
                            "could not look for a change in doubt: sent again",
                            extra={"job_id": current.job_id, "notifier": notifier.name, "seq": seq, "error": str(exc)},
                        )
                        told = False
                    except NotifierUnavailable as exc:
                        # "Could not find out" is not "not sent": it stays pending, in doubt.
                        self._pending(current, notifier.name, seq, exc, report)
                        failed = True
                        break
                    if told:
                        delivered[notifier.name] = seq
                        report.confirmed += 1
                        continue
                    kept = self._lease_for_a_call(current, token, delivered, lease_until)  # the look took some of it
                    if kept is None:
                        report.pending += 1
                        return failed
                    lease_until = kept
                try:
                    notifier.notify(current, seq)
                except NotifierRejected as exc:
                    # A poison message would sit in the outbox forever: give it up, loudly.
                    logger.error(
                        "notification rejected for good",
                        extra={"job_id": current.job_id, "notifier": notifier.name, "seq": seq, "error": str(exc)},
                    )
                    report.rejected += 1
                    delivered[notifier.name] = seq
                    continue
                except NotifierUnavailable as exc:
                    if look is not None and isinstance(exc, NotifierUncertain):
                        # It may have landed: whoever sends it next looks first. Recorded with
                        # the delivered marks below, in the round's one write.
                        doubts[notifier.name] = max(doubts.get(notifier.name, 0), seq)
                    self._pending(current, notifier.name, seq, exc, report)
                    failed = True
                    break
                delivered[notifier.name] = seq
                report.sent += 1
        all_done = all(delivered.get(n.name, 0) >= current.last_seq for n in self._notifiers)
        # A failed round moves its outbox entry back, so the drain reads what is due first and a
        # job whose notifier keeps failing never stands in front of a later job's change.
        retry_at = notice.retry_due(current, self._clock()) if failed and not all_done else None
        if asks and all_done:
            all_done, retry_at = False, self._clock()
        doubts = {name: seq for name, seq in doubts.items() if seq > delivered.get(name, 0)}
        try:
            newer = self._store.finish_delivery(current, token, delivered, all_done=all_done, retry_at=retry_at, doubts=doubts)
        except StoreUnavailable:
            # Sent but not recorded: the lease stays on the item, so whoever takes it over
            # finds these sends in doubt (backend.domain.notice.taken_over) and looks first.
            report.pending += 1
            return failed
        if newer and not failed and again < NEWER_ROUNDS:
            # The job changed while this round held its lease, and its writer, finding the lease
            # taken, left the change to whoever held it: that is this round. Deliver it now, not
            # when the outbox drain next runs (minutes later; a Completed card waited so).
            try:
                fresh = self._store.get(current.job_id)
            except TrainbotError:  # unavailable, gone, unreadable: the drain has it
                report.pending += 1
                return failed
            self._deliver(fresh, report, again=again + 1)
        return failed

    def _lease_for_a_call(self, current: Job, token: str, delivered: dict[str, int], lease_until: datetime) -> datetime | None:
        """The lease's end, for a notifier call about to start: with less than LEASE_MARGIN
        left, what was sent is recorded and the lease extended first (one write conditional on
        ``token``). None: the lease was lost (taken over after SEND_BOUND): end the round."""
        now = self._clock()
        if now < lease_until - LEASE_MARGIN:
            return lease_until
        extended = now + DELIVERY_LEASE
        try:
            held = self._store.extend_delivery(current, token, delivered, extended)
        except StoreUnavailable:
            held = False
        return extended if held else None

    @staticmethod
    def _pending(current: Job, name: str, seq: int, exc: Exception, report: DeliveryReport) -> None:
        logger.warning("notification stays pending", extra={"job_id": current.job_id, "notifier": name, "seq": seq, "error": str(exc)})
        report.failures[name] = report.failures.get(name, 0) + 1
        report.pending += 1

    def drain(self, limit: int = 500, *, should_continue: Callable[[], bool] = lambda: True) -> DeliveryReport:
        """Deliver what the outbox holds that is due (the monitor's sweep calls this): for each
        job, take its lease (the write that also reads it), deliver, record. After
        FAILED_ROUNDS_PER_DRAIN failed rounds the rest waits for the next run: a notifier that
        is down costs a bounded number of writes per run, not two per job in the outbox."""
        report = DeliveryReport()
        if not self._notifiers:
            return report
        failed_rounds = 0
        for job_id in self._store.outbox_job_ids(limit, due_by=self._clock()):
            if not should_continue() or failed_rounds >= FAILED_ROUNDS_PER_DRAIN:
                break
            before = sum(report.failures.values())
            self._counted(report, functools.partial(self._drain_one, job_id))
            failed_rounds += sum(report.failures.values()) > before
        return report

    def _drain_one(self, job_id: str, report: DeliveryReport) -> DeliveryReport:
        now = self._clock()
        token = secrets.token_hex(8)
        try:
            current = self._store.acquire_delivery(job_id, token, takeover_point(now), now + DELIVERY_LEASE)
        except StoreUnavailable:
            report.pending += 1
            return report
        if current is None:
            report.busy += 1  # another dispatcher holds it (or the job is gone)
            return report
        self._ended(current)  # its writer may have crashed before handing it to deliver()
        self._send(current, token, now + DELIVERY_LEASE, report)
        return report
