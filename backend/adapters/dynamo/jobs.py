"""Job items: idempotent registration (one job, or a sweep's batch), reads by id, and the
conditional write every status change goes through.

Every status change is an UpdateItem conditional on the status *and* version that the caller
read, so a lost race is a typed outcome (:class:`backend.ports.LostRace`), never a double move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from backend.adapters.dynamo.attributes import deserialize, serialize
from backend.adapters.dynamo.base import BATCH_WRITE_SIZE, MAX_UNPROCESSED_ROUNDS, logger
from backend.adapters.dynamo.codec import OUTBOX_KEYS, WRITER_OWNED, from_item, plain
from backend.adapters.dynamo.outbox import DeliveryLease, remember_lease
from backend.adapters.dynamo.records import DynamoRecords
from backend.domain import fairness, notice, sweeps
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.domain.times import format_utc
from backend.errors import JobNotFound, StoreUnavailable, UnreadableItem
from backend.ports import BATCH_LEASE, Applied, BatchBusy, DuplicateBatch, LostRace, Registered, WriteOutcome

# Jobs written between two records of a batch's progress: a repeat after a crash reads the keys
# of one chunk at most (a 10,000-job sweep: 20 chunks, each 20 BatchWriteItem calls).
REGISTER_CHUNK = 500
# Jobs a second one batch registration writes: each job puts a ~1 WCU entry into the same
# partition of four indexes, so one sweep holds each to 40% of DynamoDB's 1,000 WCU a second per
# partition, leaving room for a concurrent burst of submissions (issue 23). A 10,000-job sweep
# registers in 25 s.
REGISTER_RATE = 400

if TYPE_CHECKING:
    from backend.domain.model import Job


class DynamoJobs(DynamoRecords):
    """Registration, reads by id and conditional writes of job items."""

    # --- registration ----------------------------------------------------------------------

    def register(self, job: Job) -> Registered:
        """Register a New job. Idempotent: a job whose id exists already (same client token,
        hence same id) is not written again; the stored one is returned."""
        tag = fairness.first_tag(self._owner_next_tag(job.owner), job.created_at)
        tagged = job.model_copy(update={"queue_tag": tag})
        try:
            self._call(
                "put_item",
                TableName=self._table,
                Item=self._item(tagged),
                ConditionExpression="attribute_not_exists(JobId)",
            )
        except ClientError:
            return Registered(self.get(job.job_id), created=False)
        try:
            self._advance_owner_clock(job.owner, fairness.next_clock(tag, 1))
        except StoreUnavailable as exc:
            # The job is written: its owner must hear "registered", never "nothing changed".
            # A clock left behind only lets this owner's next job share a fair-share tag.
            self.metrics.owner_clock_misses += 1
            logger.warning("owner's fair-share clock not moved; the job is registered", extra={"job_id": job.job_id, "error": str(exc)})
        return Registered(tagged, created=True)

    def register_many(
        self,
        jobs: Sequence[Job],
        batch_id: str,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Register a batch (a sweep) with BatchWriteItem, retrying unprocessed items; return
        the batch's job ids.

        Idempotent on ``batch_id``: a batch record is written first, conditionally, holding the
        batch for BATCH_LEASE; a repeat of a finished batch writes nothing, a repeat while the
        lease holds raises BatchBusy (the writer's puts are unconditional), and a repeat of one
        whose writer died half-way takes the lease over and writes only the jobs that are
        missing (existing jobs may have moved on and are never overwritten).

        The record names the jobs by their ids' stem and count when the ids are a sweep's
        derived ones (backend.domain.sweeps), and counts the jobs written (``Registered``) after
        each chunk of REGISTER_CHUNK: a repeat resumes there, reading only that chunk's keys. The
        jobs' fair-share tags start at the record's ``FirstTag``, so a repeat tags the missing
        jobs as the first writer would have.
        """
        if not jobs:
            return []
        owner = jobs[0].owner
        now = jobs[0].created_at
        batch_key = {"JobId": {"S": f"{RecordKind.SWEEP}#{batch_id}"}}
        ids = [job.job_id for job in jobs]
        until = {"S": format_utc(now + BATCH_LEASE)}
        first = fairness.first_tag(self._owner_next_tag(owner), now)
        named = {k: serialize(v) for k, v in sweeps.batch_record_ids(ids).items()}
        try:
            self._call(
                "put_item",
                TableName=self._table,
                Item={
                    **batch_key,
                    "RecordType": {"S": RecordKind.SWEEP.value},
                    "State": {"S": "registering"},
                    "Until": until,
                    **named,
                    "OwnerKey": {"S": owner.key},
                    "CreatedAt": {"S": format_utc(now)},
                    "Registered": {"N": "0"},
                    "FirstTag": {"N": repr(first)},
                },
                ConditionExpression="attribute_not_exists(JobId)",
            )
            start, missing = 0, list(jobs)
        except ClientError:
            record = self._call("get_item", TableName=self._table, Key=batch_key, ConsistentRead=True)["Item"]
            stored = {k: plain(deserialize(v)) for k, v in record.items()}
            if sweeps.batch_job_ids(stored) != ids:
                raise DuplicateBatch(f"batch {batch_id} was registered with other jobs") from None
            if stored["State"] == "registered":
                return ids
            self._take_over(batch_key, batch_id, record.get("Until"), until, now)
            if "FirstTag" in stored:
                first = float(stored["FirstTag"])
            # Jobs before ``Registered`` are written; only its next chunk may be half-written
            # (nothing after it was begun). A record without it (an older version's) says nothing.
            start = int(stored.get("Registered", 0))
            upto = start + REGISTER_CHUNK if "Registered" in stored else len(ids)
            existing = self.existing_ids(ids[start:upto])
            missing = [job for job in jobs[start:] if job.job_id not in existing]

        tags = fairness.batch_tags(first, len(ids))
        writing = {job.job_id for job in missing}
        done = len(jobs) - len(missing)
        for chunk_start in range(start, len(jobs), REGISTER_CHUNK):
            chunk_end = min(chunk_start + REGISTER_CHUNK, len(jobs))
            chunk = [
                jobs[i].model_copy(update={"queue_tag": tags[i]}) for i in range(chunk_start, chunk_end) if ids[i] in writing
            ]
            self._batch_put(chunk, on_progress, total=len(jobs), already=done)
            done += len(chunk)
            if chunk_end < len(jobs):  # the last chunk's progress is the final write's
                self._registered_upto(batch_key, batch_id, until, chunk_end)
        self._advance_owner_clock(owner, fairness.next_clock(first, len(jobs)))
        self._call(
            "update_item",
            TableName=self._table,
            Key=batch_key,
            UpdateExpression="SET #s = :done, Registered = :n",
            ExpressionAttributeNames={"#s": "State"},
            ExpressionAttributeValues={":done": {"S": "registered"}, ":n": {"N": str(len(jobs))}},
        )
        return ids

    def _registered_upto(self, batch_key: dict[str, Any], batch_id: str, until: dict[str, str], count: int) -> None:
        """Record that the batch's first ``count`` jobs are written, while this writer still
        holds the batch (BatchBusy when a repeat took it over: this writer stops)."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=batch_key,
                UpdateExpression="SET Registered = :n",
                ConditionExpression="#u = :until",
                ExpressionAttributeNames={"#u": "Until"},
                ExpressionAttributeValues={":n": {"N": str(count)}, ":until": until},
            )
        except ClientError:
            raise BatchBusy(batch_id) from None

    def _take_over(self, batch_key: dict[str, Any], batch_id: str, held: Any, until: dict[str, str], now: datetime) -> None:
        """Take a batch whose registration did not finish, only once its writer's lease ran out
        (BatchBusy while it holds it): its writer's unconditional batch puts must never race
        ours, and the owner's clock must move once. Conditional on the lease as read, so of two
        repeats only one takes it."""
        if held is not None and held["S"] > format_utc(now):
            raise BatchBusy(batch_id)
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=batch_key,
                UpdateExpression="SET #u = :until",
                ConditionExpression="#s = :registering AND " + ("#u = :held" if held is not None else "attribute_not_exists(#u)"),
                ExpressionAttributeNames={"#u": "Until", "#s": "State"},
                ExpressionAttributeValues={":until": until, ":registering": {"S": "registering"}, **({":held": held} if held is not None else {})},
            )
        except ClientError:
            raise BatchBusy(batch_id) from None

    def _batch_put(
        self, jobs: Sequence[Job], on_progress: Callable[[int, int], None] | None, *, total: int, already: int
    ) -> None:
        done = already
        for start in range(0, len(jobs), BATCH_WRITE_SIZE):
            chunk = jobs[start : start + BATCH_WRITE_SIZE]
            self._pace(len(chunk))
            requests = {self._table: [{"PutRequest": {"Item": self._item(job)}} for job in chunk]}
            for round_ in range(MAX_UNPROCESSED_ROUNDS):
                answer = self._call("batch_write_item", RequestItems=requests)
                requests = answer.get("UnprocessedItems") or {}
                if not requests:
                    break
                self._backoff(round_)
            else:
                raise StoreUnavailable(f"DynamoDB kept {len(requests.get(self._table, []))} items unprocessed")
            done += len(chunk)
            if on_progress:
                on_progress(done, total)

    def _pace(self, items: int) -> None:
        """Wait until ``items`` more may be written at REGISTER_RATE: every job of a batch
        lands in the same index partitions (Queue ``ready``, Outbox ``pending``, its day's
        ByDay, its owner's), each 1,000 WCU a second at most."""
        now = self._monotonic()
        start = max(now, self._paced_until)
        if start > now:
            self._sleep(start - now)
        self._paced_until = start + items / REGISTER_RATE

    # --- reads by id ------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job; :class:`JobNotFound` if there is none."""
        if "#" in job_id:
            raise JobNotFound(job_id)
        answer = self._call("get_item", TableName=self._table, Key={"JobId": {"S": job_id}}, ConsistentRead=True)
        item = answer.get("Item")
        if item is None or item.get("RecordType", {}).get("S", RecordKind.JOB.value) != RecordKind.JOB.value:
            raise JobNotFound(job_id)
        self.metrics.items_read += 1
        return from_item(item)

    def get_many(self, job_ids: Iterable[str], *, consistent: bool = True) -> list[Job]:
        """The jobs that exist among ``job_ids`` (BatchGetItem), in the order asked.
        ``consistent=False`` halves the read's cost where an index query (itself eventually
        consistent) gave the ids: history, lists."""
        return self._jobs_by_id(job_ids, consistent=consistent)

    def active_jobs(self, limit: int | None = None) -> list[Job]:
        """Launched / InProgress / Stopping jobs, in the order they became active. The Active index
        projects only ``ActiveUse`` (see active_usage): its keys give the ids in order, and the
        items are read whole by id (BatchGetItem)."""
        ids: list[str] = []
        for answer in self._query(
            IndexName="Active",
            KeyConditionExpression="ActiveKey = :k",
            ExpressionAttributeValues={":k": {"S": "active"}},
            ProjectionExpression="JobId",
            **({"Limit": limit} if limit else {}),
        ):
            ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))
            if limit is not None and len(ids) >= limit:
                break
        return self.get_many(ids[:limit] if limit is not None else ids)

    def existing_ids(self, job_ids: Iterable[str]) -> set[str]:
        """Which of ``job_ids`` exist (reads keys only)."""
        return {item["JobId"]["S"] for item in self._batch_get(list(dict.fromkeys(job_ids)), keys_only=True)}

    # --- conditional writes -----------------------------------------------------------------

    def transition(
        self, job: Job, to_status: JobStatus, *, at: datetime, reason: str = "", **changes: Any
    ) -> WriteOutcome:
        """Move ``job`` (as read) to ``to_status``; raises IllegalTransition for an illegal
        move, returns LostRace if the stored job is no longer at ``job``'s status and version."""
        from backend.domain.model import transition

        after = transition(job, to_status, at=at, reason=reason, **changes)
        lease = None
        if self._notify_targets and notice.is_urgent(after, self._notify_targets):
            # The delivery lease, folded into the transition write: its writer delivers the
            # change at once (backend.services.notify) with no write of its own to take it.
            lease = DeliveryLease(f"v{after.version}", after.updated_at + notice.DELIVERY_LEASE)
        return self._conditional_write(job, after, lease)

    def update(self, job: Job, *, at: datetime, **changes: Any) -> WriteOutcome:
        """Change bookkeeping fields of ``job`` (not its status), conditionally on its version."""
        if "status" in changes:
            raise ValueError("status changes go through transition()")
        after = job.model_copy(update={**changes, "updated_at": at, "version": job.version + 1})
        return self._conditional_write(job, after)

    def _conditional_write(self, before: Job, after: Job, lease: DeliveryLease | None = None) -> WriteOutcome:
        """Write ``after`` if the stored job is still at ``before``'s status and version.

        An UpdateItem, not a PutItem: it sets every attribute the job has except the
        notifiers' delivery bookkeeping (``Delivered``, ``DeliveryLease``), which only the
        dispatcher writes; a transition computed from an older read must not roll it back
        (that would send a notification twice). It removes every other attribute ``before``
        had and ``after`` has not (an optional field cleared, an index the job leaves).
        """
        item = self._item(after)
        old_item = self._item(before)
        names: dict[str, str] = {}
        values: dict[str, Any] = {":s": {"S": before.status.value}, ":v": {"N": str(before.version)}}
        sets: list[str] = []
        for i, (attribute, value) in enumerate(item.items()):
            if attribute in WRITER_OWNED or attribute == "JobId":
                continue
            # Only what changed since the caller's read (a job item is a few KB; most writes
            # touch a few attributes). The dispatcher moves the outbox keys without a new
            # version, so "unchanged since the read" says nothing about them: always written.
            if old_item.get(attribute) == value and attribute not in OUTBOX_KEYS:
                continue
            names[f"#a{i}"] = attribute
            values[f":a{i}"] = value
            sets.append(f"#a{i} = :a{i}")
        removes = []
        for j, attribute in enumerate(sorted(set(old_item) - set(item) - WRITER_OWNED)):
            names[f"#r{j}"] = attribute
            removes.append(f"#r{j}")
        names["#status"] = "JobStatus"
        names["#version"] = "Version"
        condition = "#status = :s AND #version = :v"
        if lease is not None:
            # Taken only if no other dispatcher holds a live one (a drain mid-delivery).
            sets.append("DeliveryLease = :lease")
            names["#until"] = "Until"
            values[":lease"] = {"M": {"Token": {"S": lease.token}, "Until": {"S": format_utc(lease.until)}}}
            # Not before SEND_BOUND after it ran out: its holder's last send may be under way.
            values[":now"] = {"S": format_utc(after.updated_at - notice.SEND_BOUND)}
            condition += " AND (attribute_not_exists(DeliveryLease) OR DeliveryLease.#until < :now)"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            answer = self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": before.job_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                # The lease's holder delivers from this write's answer: what a drain delivered
                # between our read and this write must not be sent again, and a lease still on
                # the item (never given back) puts its holder's sends in doubt (a free return
                # value: the item as it was, whose delivery bookkeeping this write leaves alone).
                **({"ReturnValues": "ALL_OLD"} if lease is not None else {}),
            )
        except ClientError as exc:
            old: Any = exc.response.get("Item")
            current = None
            if isinstance(old, dict):
                try:
                    current = from_item(old)
                except UnreadableItem:
                    current = None
            if lease is not None and current is not None and (current.status, current.version) == (before.status, before.version):
                # Refused only for the live lease of another dispatcher: move the job without
                # it (that dispatcher, or the drain, delivers the change). Rare: one more write.
                return self._conditional_write(before, after)
            return LostRace(before.job_id, before.status, before.version, current)
        if lease is not None:
            remember_lease(self, after.job_id, after.version)
            before_item = answer["Attributes"]
            stored = from_item(before_item)
            if "DeliveryLease" in before_item:
                stored = notice.taken_over(stored, self._notify_targets)
            after = after.model_copy(update={"delivered": stored.delivered, "doubts": stored.doubts, "slack": stored.slack or after.slack})
        return Applied(after)
