"""Notification dispatch through the outbox on the job item.

Each status change is a history entry with a sequence number; each notifier (Slack, SNS) has
a "delivered up to" number on the item. After a transition the writer calls
:meth:`Dispatcher.deliver`; whatever a notifier could not take (Slack down, SNS throttled)
stays pending and the monitor's sweep drains the ``Outbox`` index later. A notifier outage
therefore never blocks or undoes a transition and loses nothing. A delivery lease on the item
keeps two dispatchers (an inline one and a drain) from sending the same change twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from backend.domain.model import Job
from backend.errors import JobNotFound, NotifierRejected, NotifierUnavailable, StoreUnavailable
from backend.ports import Notifier, OutboxStore

logger = Logger(service="trainbot", child=True)

DELIVERY_LEASE = timedelta(seconds=60)
# A delivery round sends no more once this little of its lease is left: one more send (a Slack
# call with its bounded 429 waits and timeouts) and the write that records it must end before
# the lease does, or a second dispatcher could take the lease and send the same change again.
LEASE_MARGIN = timedelta(seconds=30)


@dataclass
class DeliveryReport:
    sent: int = 0
    pending: int = 0
    rejected: int = 0  # refused for good (see NotifierRejected): logged, not retried
    busy: int = 0  # another dispatcher held the job's delivery lease
    failures: dict[str, int] = field(default_factory=dict)


class Dispatcher:
    """Delivers each job's undelivered status changes to every notifier, in order."""

    def __init__(self, store: OutboxStore, notifiers: Sequence[Notifier], clock: Callable[[], datetime]) -> None:
        self._store = store
        self._notifiers = list(notifiers)
        self._clock = clock
        # Everything this dispatcher did since the last take_totals(): for the handlers' metrics.
        self._totals = DeliveryReport()

    def take_totals(self) -> DeliveryReport:
        """What was sent, left pending and rejected since the last call (then reset)."""
        totals, self._totals = self._totals, DeliveryReport()
        return totals

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(n.name for n in self._notifiers)

    def deliver(self, job: Job, report: DeliveryReport | None = None) -> DeliveryReport:
        """Send ``job``'s pending changes; never raises for a notifier failure."""
        report = report or DeliveryReport()
        before = (report.sent, report.pending, report.rejected)
        try:
            return self._deliver(job, report)
        finally:
            self._totals.sent += report.sent - before[0]
            self._totals.pending += report.pending - before[1]
            self._totals.rejected += report.rejected - before[2]

    def _deliver(self, job: Job, report: DeliveryReport) -> DeliveryReport:
        if not self._notifiers:
            return report
        now = self._clock()
        token = secrets.token_hex(8)
        try:
            current = self._store.acquire_delivery(job.job_id, token, now, now + DELIVERY_LEASE)
        except StoreUnavailable:
            report.pending += 1
            return report
        if current is None:
            report.busy += 1
            return report
        delivered = dict(current.delivered)
        send_until = now + DELIVERY_LEASE - LEASE_MARGIN
        for notifier in self._notifiers:
            for seq in range(delivered.get(notifier.name, 0) + 1, current.last_seq + 1):
                if current.entry(seq) is None:
                    delivered[notifier.name] = seq  # compacted away before it could be sent
                    continue
                if self._clock() >= send_until:
                    report.pending += 1  # the rest waits for the next round, under a new lease
                    break
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
                    logger.warning(
                        "notification stays pending",
                        extra={"job_id": current.job_id, "notifier": notifier.name, "seq": seq, "error": str(exc)},
                    )
                    report.failures[notifier.name] = report.failures.get(notifier.name, 0) + 1
                    report.pending += 1
                    break
                delivered[notifier.name] = seq
                report.sent += 1
        all_done = all(delivered.get(n.name, 0) >= current.last_seq for n in self._notifiers)
        try:
            self._store.finish_delivery(current, token, delivered, all_done=all_done)
        except StoreUnavailable:
            # Sent but not recorded: the lease expires and the change may be sent once more,
            # which beats losing it.
            report.pending += 1
        return report

    def drain(self, limit: int = 100, *, should_continue: Callable[[], bool] = lambda: True) -> DeliveryReport:
        """Deliver what the outbox still holds (the monitor's sweep calls this)."""
        report = DeliveryReport()
        for job_id in self._store.outbox_job_ids(limit):
            if not should_continue():
                break
            try:
                self.deliver(self._store.get(job_id), report)
            except JobNotFound:
                continue
        return report
