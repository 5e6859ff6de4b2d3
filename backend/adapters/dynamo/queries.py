"""Job queries over the sparse GSIs: the launch queue (ready, waiting, claimed), the active
jobs, a user's jobs and the history by day, each paged with opaque cursors."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backend.adapters.dynamo.base import DynamoTable
from backend.adapters.dynamo.codec import decode_cursor, encode_cursor
from backend.domain.fairness import launch_order
from backend.domain.times import format_utc, to_utc
from backend.ports import Page

if TYPE_CHECKING:
    from backend.domain.model import Job, Owner


class DynamoQueries(DynamoTable):
    """The read side of :class:`backend.ports.JobRepository` over the table's indexes."""

    # --- the launch queue -------------------------------------------------------------------

    def _queue_partition(self, partition: str, limit: int | None, upto: str | None = None) -> list[Job]:
        condition = "QueueKey = :k"
        values: dict[str, Any] = {":k": {"S": partition}}
        if upto is not None:
            condition += " AND QueueSort <= :upto"
            values[":upto"] = {"S": upto}
        return self._query_jobs(limit, IndexName="Queue", KeyConditionExpression=condition, ExpressionAttributeValues=values)

    def ready_jobs(self, limit: int | None) -> list[Job]:
        """New jobs no launcher holds, highest priority first, fair across owners, then oldest."""
        return self._queue_partition("ready", limit)

    def held_jobs(self, limit: int | None) -> list[Job]:
        """Jobs waiting for an admin's approval, oldest first (never read by a launcher)."""
        return self._queue_partition("held", limit)

    def retrying_due(self, now: datetime, limit: int | None) -> list[Job]:
        """Retrying jobs whose next attempt time has come."""
        return self._queue_partition("waiting", limit, upto=format_utc(now) + "#~")

    def expired_claims(self, now: datetime, limit: int | None) -> list[Job]:
        """Queued jobs whose launcher's lease ran out (it died, or is very late): to reconcile."""
        return self._queue_partition("claimed", limit, upto=format_utc(now) + "#~")

    def due_for_launch(self, now: datetime, limit: int) -> list[Job]:
        """Jobs due for launch, in launch order (see :meth:`iter_due`)."""
        return list(self.iter_due(now, limit))

    def iter_due(self, now: datetime, limit: int, page: int = 50) -> Iterator[Job]:
        """Jobs due for launch, in launch order: expired claims first (they may already exist
        on SageMaker), then ready and due-retrying jobs merged by priority, fair tag, age.
        Ready jobs are read a page at a time as the caller consumes them, so a launcher that
        stops early has not paid for the rest of the queue."""
        reconcile = self.expired_claims(now, limit)
        retrying = sorted(self.retrying_due(now, limit), key=launch_order)
        ready = self._iter_partition("ready", min(page, limit))
        merged = heapq.merge(retrying, ready, key=launch_order)
        yield from itertools.islice(itertools.chain(reconcile, merged), limit)

    def _iter_partition(self, partition: str, page: int) -> Iterator[Job]:
        for answer in self._query(
            IndexName="Queue",
            KeyConditionExpression="QueueKey = :k",
            ExpressionAttributeValues={":k": {"S": partition}},
            Limit=page,
        ):
            yield from self._readable(answer.get("Items", []))

    # --- active, owner, history -------------------------------------------------------------

    def parked_types(self) -> list[str]:
        """The instance types that have parked jobs (one one-item query per type, not per job)."""
        types: list[str] = []
        after = ""
        while True:
            condition, values = "QueueKey = :k", {":k": {"S": "parked"}}
            if after:
                condition += " AND QueueSort > :after"
                values[":after"] = {"S": f"{after}#~"}
            answer = self._call(
                "query", TableName=self._table, IndexName="Queue", KeyConditionExpression=condition,
                ExpressionAttributeValues=values, Limit=1, ProjectionExpression="QueueSort",
            )
            self.metrics.items_read += answer.get("ScannedCount", 0)
            items = answer.get("Items", [])
            if not items:
                return types
            after = items[0]["QueueSort"]["S"].split("#", 1)[0]
            types.append(after)

    def parked_jobs(self, instance_type: str, limit: int) -> list[Job]:
        """Parked jobs of ``instance_type``, in launch order."""
        return self._query_jobs(
            limit,
            IndexName="Queue",
            KeyConditionExpression="QueueKey = :k AND begins_with(QueueSort, :t)",
            ExpressionAttributeValues={":k": {"S": "parked"}, ":t": {"S": f"{instance_type}#"}},
        )

    def active_usage(self) -> dict[str, int]:
        """Instances in use per type, from the Active index's projection (``ActiveUse``) alone:
        a few small pages at 10,000 active jobs, not every whole item."""
        usage: dict[str, int] = {}
        for answer in self._query(
            IndexName="Active",
            KeyConditionExpression="ActiveKey = :k",
            ExpressionAttributeValues={":k": {"S": "active"}},
            ProjectionExpression="ActiveUse",
        ):
            for item in answer.get("Items", []):
                instance_type, _, count = item.get("ActiveUse", {}).get("S", "").rpartition("#")
                if instance_type and count.isdigit():
                    usage[instance_type] = usage.get(instance_type, 0) + int(count)
        return usage

    def jobs_of_owner(self, owner: Owner, *, limit: int = 20, cursor: str | None = None) -> Page:
        """A user's jobs, newest first, ``limit`` per page."""
        kwargs: dict[str, Any] = {
            "IndexName": "Owner",
            "KeyConditionExpression": "OwnerId = :o",
            "ExpressionAttributeValues": {":o": {"S": owner.key}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor)
        answer = self._call("query", TableName=self._table, **kwargs)
        self.metrics.items_read += answer.get("ScannedCount", 0)
        jobs = list(self._readable(answer.get("Items", [])))
        last = answer.get("LastEvaluatedKey")
        return Page(jobs, encode_cursor(last) if last else None)

    def jobs_created_on(self, day: str, *, since: str | None = None, until: str | None = None) -> Iterator[Job]:
        """Jobs created on ``day`` (YYYY-MM-DD), optionally within [since, until] timestamps."""
        condition = "CreatedDay = :d"
        values: dict[str, Any] = {":d": {"S": day}}
        if since and until:
            condition += " AND CreatedAt BETWEEN :a AND :b"
            values.update({":a": {"S": since}, ":b": {"S": until}})
        elif since:
            condition += " AND CreatedAt >= :a"
            values[":a"] = {"S": since}
        elif until:
            condition += " AND CreatedAt <= :b"
            values[":b"] = {"S": until}
        for answer in self._query(IndexName="ByDay", KeyConditionExpression=condition, ExpressionAttributeValues=values):
            yield from self._readable(answer.get("Items", []))

    def recent_jobs(self, *, limit: int = 20, cursor: str | None = None, today: datetime, max_days: int = 90) -> Page:
        """Everyone's jobs, newest first, walking the ByDay index back from ``today``."""
        state = decode_cursor(cursor, required="Day") if cursor else {"Day": format_utc(today)[:10]}
        day = datetime.fromisoformat(state["Day"]).date()
        start_key = state.get("Key")
        jobs: list[Job] = []
        oldest = to_utc(today).date().toordinal() - max_days
        while len(jobs) < limit and day.toordinal() >= oldest:
            kwargs: dict[str, Any] = {
                "IndexName": "ByDay",
                "KeyConditionExpression": "CreatedDay = :d",
                "ExpressionAttributeValues": {":d": {"S": day.isoformat()}},
                "ScanIndexForward": False,
                "Limit": limit - len(jobs),
            }
            if start_key:
                kwargs["ExclusiveStartKey"] = start_key
            answer = self._call("query", TableName=self._table, **kwargs)
            self.metrics.items_read += answer.get("ScannedCount", 0)
            jobs.extend(self._readable(answer.get("Items", [])))
            start_key = answer.get("LastEvaluatedKey")
            if start_key and len(jobs) >= limit:
                return Page(jobs, encode_cursor({"Day": day.isoformat(), "Key": start_key}))
            if not start_key:
                day = day.fromordinal(day.toordinal() - 1)
        more = day.toordinal() >= oldest
        return Page(jobs, encode_cursor({"Day": day.isoformat()}) if more else None)
