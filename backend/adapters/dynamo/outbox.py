"""The notification outbox: jobs with an undelivered status change (the sparse ``Outbox``
index, sorted by when each is due: :func:`backend.domain.notice.delivery_due`), and the per-job
delivery lease that keeps two dispatchers from sending one change twice. A transition with an
urgent change takes the lease in its own write (:meth:`DynamoJobs.transition`); only the
outbox drain takes one with a write of its own (:meth:`acquire_delivery`)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

from botocore.exceptions import ClientError

from backend.adapters.dynamo.base import DynamoTable
from backend.adapters.dynamo.codec import from_item
from backend.domain import notice
from backend.domain.times import format_utc

if TYPE_CHECKING:
    from backend.domain.model import Job


class DeliveryLease(NamedTuple):
    token: str
    until: datetime


_LEASES_KEPT = 1024


def _leases(table: DynamoTable) -> OrderedDict[str, int]:
    """The leases this thread's writes took. Per thread, not per process: Lambda runs one
    invocation per execution environment, but local mode runs a function's concurrent
    invocations as threads of one process, and one invocation must never answer (and use up)
    another's (a reader of the job at an older version took the writer's mark away, and neither
    delivered: the change waited three minutes for the drain)."""
    local = table.__dict__.setdefault("_folded_leases", threading.local())
    if not hasattr(local, "leases"):
        local.leases = OrderedDict()
    return local.leases


def remember_lease(table: DynamoTable, job_id: str, version: int) -> None:
    """This thread took ``job_id``'s delivery lease in its write of ``version`` to ``table``."""
    leases = _leases(table)
    leases[job_id] = version
    while len(leases) > _LEASES_KEPT:
        leases.popitem(last=False)


class DynamoOutbox(DynamoTable):
    """The :class:`backend.ports.OutboxStore` part of the DynamoDB store."""

    def holds_delivery(self, job: Job) -> bool:
        """Whether this thread's write of ``job`` (as it is now) took its delivery lease, whose
        token is then ``v<version>``; asked once (the answer is forgotten)."""
        return _leases(self).pop(job.job_id, None) == job.version

    def outbox_job_ids(self, limit: int | None = None, *, due_by: datetime | None = None) -> list[str]:
        """Ids of jobs with undelivered notifications, soonest due first (with ``due_by``: only
        those due by then)."""
        ids: list[str] = []
        condition, values = "OutboxKey = :k", {":k": {"S": "pending"}}
        if due_by is not None:
            condition += " AND OutboxSort <= :due"
            values[":due"] = {"S": format_utc(due_by) + "#~"}
        for answer in self._query(
            IndexName="Outbox",
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            **({"Limit": limit} if limit else {}),
        ):
            ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))
            if limit is not None and len(ids) >= limit:
                return ids[:limit]
        return ids

    def acquire_delivery(self, job_id: str, token: str, now: datetime, until: datetime) -> Job | None:
        """Take the job's delivery lease (so two dispatchers never send the same change twice)
        and return the job as stored, with its ``delivered`` map; None if another holds it.
        The write answers the item as it was (ALL_OLD: the same but for the lease): a lease
        still on it was never given back, so its holder's sends are in doubt
        (:func:`backend.domain.notice.taken_over`)."""
        try:
            answer = self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job_id}},
                UpdateExpression="SET DeliveryLease = :lease",
                ConditionExpression="attribute_exists(JobId) AND (attribute_not_exists(DeliveryLease) OR DeliveryLease.#until < :now)",
                ExpressionAttributeNames={"#until": "Until"},
                ExpressionAttributeValues={
                    ":lease": {"M": {"Token": {"S": token}, "Until": {"S": format_utc(until)}}},
                    ":now": {"S": format_utc(now)},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError:
            return None
        self.metrics.items_read += 1
        before = answer["Attributes"]
        job = from_item(before)
        return notice.taken_over(job, self._notify_targets) if "DeliveryLease" in before else job

    def extend_delivery(self, job: Job, token: str, delivered: dict[str, int], until: datetime) -> bool:
        """Record what was delivered so far and extend the lease, if it is still ``token``'s."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job.job_id}},
                UpdateExpression="SET Delivered = :d, DeliveryLease.#until = :u",
                ConditionExpression="DeliveryLease.#token = :t",
                ExpressionAttributeNames={"#token": "Token", "#until": "Until"},
                ExpressionAttributeValues={
                    ":d": {"M": {k: {"N": str(v)} for k, v in delivered.items()}},
                    ":t": {"S": token},
                    ":u": {"S": format_utc(until)},
                },
            )
        except ClientError:
            return False  # taken over: the new holder re-reads Delivered
        return True

    def finish_delivery(
        self,
        job: Job,
        token: str,
        delivered: dict[str, int],
        *,
        all_done: bool,
        retry_at: datetime | None = None,
        doubts: dict[str, int] | None = None,
    ) -> bool:
        """Record what was delivered and release the lease; when everything up to the job's
        last change is delivered and the job has not changed since, leave the Outbox index;
        with ``retry_at``, stay in it due then (a failing delivery backs off). ``doubts``
        (when given) replaces the item's ``Doubts`` in the same write (none: removed). True
        when recorded although the job changed since ``job`` (:meth:`backend.ports.OutboxStore.finish_delivery`)."""
        values = {":d": {"M": {k: {"N": str(v)} for k, v in delivered.items()}}, ":t": {"S": token}}
        names = {"#token": "Token"}
        # Doubts ride in this write, whichever branch lands: never a write of their own.
        doubts_set, doubts_remove = "", ""
        if doubts:
            values[":doubts"] = {"M": {k: {"N": str(v)} for k, v in doubts.items()}}
            doubts_set = ", Doubts = :doubts"
        elif doubts is not None:
            doubts_remove = ", Doubts"
        if all_done:
            try:
                self._call(
                    "update_item",
                    TableName=self._table,
                    Key={"JobId": {"S": job.job_id}},
                    UpdateExpression=f"SET Delivered = :d{doubts_set} REMOVE DeliveryLease, OutboxKey, OutboxSort{doubts_remove}",
                    ConditionExpression="DeliveryLease.#token = :t AND Version = :v",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**values, ":v": {"N": str(job.version)}},
                )
                return False
            except ClientError:
                pass  # the job changed meanwhile (or the lease is lost): its new change keeps it in the outbox
        elif retry_at is not None:
            try:
                self._call(
                    "update_item",
                    TableName=self._table,
                    Key={"JobId": {"S": job.job_id}},
                    UpdateExpression=f"SET Delivered = :d{doubts_set}, OutboxKey = :pending, OutboxSort = :due REMOVE DeliveryLease{doubts_remove}",
                    ConditionExpression="DeliveryLease.#token = :t AND Version = :v",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={
                        **values,
                        ":v": {"N": str(job.version)},
                        ":pending": {"S": "pending"},
                        ":due": {"S": f"{format_utc(retry_at)}#{job.job_id}"},
                    },
                )
                return False
            except ClientError:
                pass  # the job changed meanwhile (or the lease is lost): its new change's due time stands
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job.job_id}},
                UpdateExpression=f"SET Delivered = :d{doubts_set} REMOVE DeliveryLease{doubts_remove}",
                ConditionExpression="DeliveryLease.#token = :t",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError:
            return False  # our lease expired and another dispatcher took over: it re-reads Delivered
        return all_done or retry_at is not None  # the conditional write above failed on the version alone
