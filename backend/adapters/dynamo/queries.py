"""Job queries over the sparse GSIs: the launch queue (ready, waiting, claimed), the active
jobs, a user's jobs and the history by day, each paged with opaque cursors."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backend.adapters.dynamo.base import DynamoTable, logger
from backend.adapters.dynamo.codec import decode_cursor, encode_cursor, queue_place
from backend.domain.fairness import launch_order
from backend.domain.queue_order import QueuedJob
from backend.domain.status import JobStatus
from backend.domain.times import format_utc, parse_utc, to_utc
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
        return self._queue_jobs(limit, KeyConditionExpression=condition, ExpressionAttributeValues=values)

    def _queue_jobs(self, limit: int | None, **kwargs: Any) -> list[Job]:
        jobs: list[Job] = []
        for answer in self._query(IndexName="Queue", **({"Limit": limit} if limit else {}), **kwargs):
            jobs.extend(self._queued(answer.get("Items", [])))
            if limit is not None and len(jobs) >= limit:
                return jobs[:limit]
        return jobs

    def _queued(self, entries: list[dict[str, Any]]) -> list[Job]:
        """The jobs of a page of Queue index entries. The index projects keys only (a job's
        every write while queued would otherwise rewrite its whole entry), so the items are read
        by id, consistently, and an entry the item has already left (the index lags the table:
        claimed, launched, its retry put off) is dropped, as the launcher would have lost the
        race to claim it anyway."""
        places = {e["JobId"]["S"]: (e["QueueKey"]["S"], e["QueueSort"]["S"]) for e in entries}
        return [job for job in self._jobs_by_id(places) if queue_place(job) == places[job.job_id]]

    def ready_jobs(self, limit: int | None) -> list[Job]:
        """New jobs no launcher holds, highest priority first, fair across owners, then oldest."""
        return self._queue_partition("ready", limit)

    def held_jobs(self, limit: int | None) -> list[Job]:
        """Jobs waiting for an admin's approval, oldest first (never read by a launcher)."""
        return self._queue_partition("held", limit)

    def held_count(self) -> int:
        """Jobs in the ``held`` partition, counted (Select COUNT reads its small entries only)."""
        count = 0
        for answer in self._query(
            IndexName="Queue", KeyConditionExpression="QueueKey = :k", ExpressionAttributeValues={":k": {"S": "held"}}, Select="COUNT"
        ):
            count += answer.get("Count", 0)
        return count

    def queued_jobs(self) -> list[QueuedJob]:
        """The launchable queue from the Queue index's entries alone: it projects what ranking
        needs (owner, priority, fair-share tag, creation, next attempt, status), all fixed while
        a job stays at one place in the queue, so projecting them costs no write. A 10,000-job
        queue is about 2 MB of entries (250 RCU, 2 pages), not 10,000 items."""
        names = {f"#p{i}": name for i, name in enumerate(_RANKED)}
        found: list[QueuedJob] = []
        for partition in ("ready", "waiting", "claimed", "parked"):
            for answer in self._query(
                IndexName="Queue",
                KeyConditionExpression="QueueKey = :k",
                ExpressionAttributeValues={":k": {"S": partition}},
                ProjectionExpression=", ".join(names),
                ExpressionAttributeNames=names,
            ):
                for entry in answer.get("Items", []):
                    try:
                        found.append(_queued_job(entry, claimed=partition == "claimed"))
                    except (KeyError, ValueError) as exc:
                        self.metrics.unreadable_items += 1
                        logger.error("unreadable queue entry skipped", extra={"job_id": entry.get("JobId", {}).get("S"), "error": str(exc)})
        return found

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
            yield from self._queued(answer.get("Items", []))

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
        return self._queue_jobs(
            limit,
            KeyConditionExpression="QueueKey = :k AND begins_with(QueueSort, :t)",
            ExpressionAttributeValues={":k": {"S": "parked"}, ":t": {"S": f"{instance_type}#"}},
        )

    def active_places(self) -> list[tuple[str, str]]:
        """(place, job id) of every active job from the Active index's keys alone: at 10,000
        active jobs about 0.8 MB of small entries (100 RCU), not 10,000 items."""
        places: list[tuple[str, str]] = []
        for answer in self._query(
            IndexName="Active",
            KeyConditionExpression="ActiveKey = :k",
            ExpressionAttributeValues={":k": {"S": "active"}},
            ProjectionExpression="JobId, ActiveSort",
        ):
            places.extend((item["ActiveSort"]["S"], item["JobId"]["S"]) for item in answer.get("Items", []))
        return places

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
        # The index projects keys only (its entries never change after registration, so a job's
        # writes cost it nothing): the page's items are read by id.
        jobs = self._jobs_by_id((item["JobId"]["S"] for item in answer.get("Items", [])), consistent=False)
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
            # Keys only (see jobs_of_owner): each page of ids, then its items by id.
            yield from self._jobs_by_id((item["JobId"]["S"] for item in answer.get("Items", [])), consistent=False)

    def count_created(self, since: str, until: str) -> int:
        """Jobs created within [since, until]: a COUNT query per day on ByDay (keys only, and
        DynamoDB answers the count, not the entries)."""
        total = 0
        first, last = datetime.fromisoformat(since[:10]).date(), datetime.fromisoformat(until[:10]).date()
        for offset in range((last - first).days + 1):
            day = (first + timedelta(days=offset)).isoformat()
            for answer in self._query(
                IndexName="ByDay",
                KeyConditionExpression="CreatedDay = :d AND CreatedAt BETWEEN :a AND :b",
                ExpressionAttributeValues={":d": {"S": day}, ":a": {"S": since}, ":b": {"S": until}},
                Select="COUNT",
            ):
                total += int(answer.get("Count", 0))
        return total

    def count_owned(self, owner: Owner, since: str, until: str) -> int:
        """``owner``'s jobs created within [since, until]: a COUNT query on the Owner index."""
        total = 0
        for answer in self._query(
            IndexName="Owner",
            KeyConditionExpression="OwnerId = :o AND CreatedAt BETWEEN :a AND :b",
            ExpressionAttributeValues={":o": {"S": owner.key}, ":a": {"S": since}, ":b": {"S": until}},
            Select="COUNT",
        ):
            total += int(answer.get("Count", 0))
        return total

    def jobs_ended_in(self, slice_name: str) -> list[Job]:
        """Jobs whose end is in a ten-minute slice: the Ended index's keys, then the items by id
        (consistently: the rollup must see the end the index showed, or a later change)."""
        ids: list[str] = []
        for answer in self._query(
            IndexName="Ended", KeyConditionExpression="Ended = :s", ExpressionAttributeValues={":s": {"S": slice_name}}
        ):
            ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))
        return self._jobs_by_id(ids, consistent=True)

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
            jobs.extend(self._jobs_by_id((item["JobId"]["S"] for item in answer.get("Items", [])), consistent=False))
            start_key = answer.get("LastEvaluatedKey")
            if start_key and len(jobs) >= limit:
                return Page(jobs, encode_cursor({"Day": day.isoformat(), "Key": start_key}))
            if not start_key:
                day = day.fromordinal(day.toordinal() - 1)
        more = day.toordinal() >= oldest
        return Page(jobs, encode_cursor({"Day": day.isoformat()}) if more else None)


# The Queue index's projected attributes (template.yaml) and keys that ranking reads.
_RANKED = ("JobId", "QueueSort", "OwnerId", "Priority", "QueueTag", "CreatedAt", "NextAttemptAt", "JobStatus")


def _queued_job(entry: dict[str, Any], *, claimed: bool) -> QueuedJob:
    """A Queue index entry as ranking reads it (a claimed job's lease ends where its sort key says)."""
    next_attempt = entry.get("NextAttemptAt", {}).get("S")
    return QueuedJob(
        job_id=entry["JobId"]["S"],
        owner=entry["OwnerId"]["S"],
        priority=int(entry["Priority"]["N"]),
        queue_tag=float(entry["QueueTag"]["N"]),
        created_at=parse_utc(entry["CreatedAt"]["S"]),
        claimed_until=parse_utc(entry["QueueSort"]["S"].split("#", 1)[0]) if claimed else None,
        next_attempt_at=parse_utc(next_attempt) if next_attempt else None,
        status=JobStatus(entry["JobStatus"]["S"]),
    )
