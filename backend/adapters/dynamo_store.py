"""The job store over DynamoDB (boto3 client, standard retry mode).

Every status change is a PutItem conditional on the status *and* version that the caller
read, so a lost race is a typed outcome (:class:`LostRace`), never a double move. The sparse
GSIs declared in `template.yaml` serve the hot paths, so no query reads more than it returns:

- ``Queue``: ``ready`` New jobs by priority then fair-share tag; ``waiting`` Retrying jobs by
  next attempt time; ``claimed`` jobs a launcher holds, by lease expiry.
- ``Active``: Launched / InProgress / Stopping jobs.
- ``Owner``: a user's jobs, newest first.  ``ByDay``: history by creation day.
- ``Outbox``: jobs with a status change some notifier has not delivered.

Besides jobs the table holds a few small records keyed ``<kind>#<id>`` (owner fair-share
state, sweep registrations, presets); ``#`` never occurs in a JobId, and none of them carries
a GSI key, so they never show up in job queries.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from backend.domain.model import Job, Owner
from backend.domain.status import ACTIVE, JobStatus, transition
from backend.domain.times import format_utc, to_utc
from backend.errors import JobNotFound, StoreUnavailable, TrainbotError
from backend.ports import Applied, LostRace, Page, Registered, WriteOutcome

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Virtual time, in seconds, that one queued job adds to its owner's fair-share clock: a
# 1,000-job sweep is queued as if spread over 1,000 quanta, so a colleague's single job
# submitted a moment later sorts among the first of them, not after all of them.
FAIR_SHARE_QUANTUM = 60.0
BATCH_WRITE_SIZE = 25
BATCH_GET_SIZE = 100
MAX_UNPROCESSED_ROUNDS = 8
_GSI_KEYS = ("QueueKey", "QueueSort", "ActiveKey", "ActiveSort", "OwnerId", "CreatedDay", "OutboxKey", "OutboxSort")
# Written only by the notification dispatcher, never by a job write.
# ``Slack`` is set at registration and then only by set_thread (its root message ts).
_WRITER_OWNED = frozenset({"Delivered", "DeliveryLease", "Slack"})
# Attributes a job write removes when the new job does not carry them (optional fields, and
# index keys that put the job into an index it must now leave).
_REMOVABLE = frozenset(
    {"QueueKey", "QueueSort", "ActiveKey", "ActiveSort", "NextAttemptAt", "CapacityWaitSince", "Lease", "ExpiresAt", "ParkedAt"}
)


class DuplicateBatch(TrainbotError):
    """A batch id was registered before with other jobs."""


@dataclass
class StoreMetrics:
    """What the store asked DynamoDB: calls by operation, and items read (ScannedCount for
    queries, items returned for gets). Benchmarks and scale tests read these."""

    calls: Counter = field(default_factory=Counter)
    items_read: int = 0

    def reset(self) -> None:
        self.calls.clear()
        self.items_read = 0


def to_item(job: Job, notify_targets: Sequence[str] = ()) -> dict[str, Any]:
    """The DynamoDB item (attribute values in DynamoDB JSON) for ``job``, with its index keys."""
    plain = json.loads(job.model_dump_json(by_alias=True, exclude_none=True), parse_float=Decimal)
    plain["RecordType"] = "job"
    plain.update(index_keys(job, notify_targets))
    return {key: _serializer.serialize(value) for key, value in plain.items()}


def index_keys(job: Job, notify_targets: Sequence[str] = ()) -> dict[str, str]:
    """The GSI key attributes ``job`` carries now (absent attributes keep it out of an index)."""
    keys = {
        "OwnerId": job.owner.key,
        "CreatedDay": format_utc(job.created_at)[:10],
    }
    if job.is_queued:
        if job.lease is not None:
            keys["QueueKey"] = "claimed"
            keys["QueueSort"] = f"{format_utc(job.lease.expires_at)}#{job.job_id}"
        elif job.parked_at is not None:
            keys["QueueKey"] = "parked"
            keys["QueueSort"] = f"{job.job_args.instance_type}#{ready_sort_key(job)}"
        elif job.status is JobStatus.RETRYING:
            due = job.next_attempt_at or job.updated_at
            keys["QueueKey"] = "waiting"
            keys["QueueSort"] = f"{format_utc(due)}#{job.job_id}"
        else:
            keys["QueueKey"] = "ready"
            keys["QueueSort"] = ready_sort_key(job)
    if job.status in ACTIVE:
        keys["ActiveKey"] = "active"
        keys["ActiveSort"] = f"{format_utc(job.updated_at)}#{job.job_id}"
    if any(job.delivered.get(target, 0) < job.last_seq for target in notify_targets):
        keys["OutboxKey"] = "pending"
        keys["OutboxSort"] = f"{format_utc(job.updated_at)}#{job.job_id}"
    return keys


def expires_at(job: Job, retention_days: int) -> int | None:
    """When a finished job may expire (epoch seconds, DynamoDB TTL): ``retention_days`` after
    it reached its terminal status. None while it is not finished, or with retention off (0)."""
    if retention_days <= 0 or not job.is_terminal:
        return None
    ended = job.history[-1].at if job.history else job.updated_at
    return int(_epoch(ended)) + retention_days * 86400


def ready_sort_key(job: Job) -> str:
    """Highest priority first, then the owner-fair tag, then age."""
    return f"{9 - job.priority}#{job.queue_tag:017.3f}#{format_utc(job.created_at)}#{job.job_id}"


def launch_order(job: Job) -> tuple:
    """The order in which the launcher takes due jobs: the ready index's order, with due
    Retrying jobs merged in by the same rule."""
    return (9 - job.priority, job.queue_tag, job.created_at, job.job_id)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return [_plain(v) for v in sorted(value)]
    return value


def from_item(item: dict[str, Any]) -> Job:
    plain = {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}
    for key in (*_GSI_KEYS, "RecordType", "ExpiresAt", "DeliveryLease"):
        plain.pop(key, None)
    return Job.model_validate(plain)


def _epoch(value: datetime) -> float:
    return to_utc(value).timestamp()


class DynamoJobStore:
    """The :class:`backend.ports.JobRepository` over one DynamoDB table."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        notify_targets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        retention_days: int = 0,
    ) -> None:
        self._client = client
        self._table = table_name
        self._notify_targets = tuple(notify_targets)
        self._sleep = sleep
        self._retention_days = retention_days
        self.metrics = StoreMetrics()

    @property
    def table_name(self) -> str:
        return self._table

    @property
    def notify_targets(self) -> tuple[str, ...]:
        return self._notify_targets

    def set_notify_targets(self, targets: Sequence[str]) -> None:
        """The notifiers whose deliveries the Outbox index tracks (set once, when wiring)."""
        self._notify_targets = tuple(targets)

    # --- low-level -------------------------------------------------------------------------

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call; failures after boto3's own retries become StoreUnavailable,
        except conditional-check failures, which callers handle."""
        self.metrics.calls[operation] += 1
        try:
            return getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"ConditionalCheckFailedException", "TransactionCanceledException"}:
                raise
            raise StoreUnavailable(f"DynamoDB {operation} failed: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {operation} could not be reached: {exc}") from exc

    @property
    def retention_days(self) -> int:
        return self._retention_days

    def _item(self, job: Job) -> dict[str, Any]:
        item = to_item(job, self._notify_targets)
        expires = expires_at(job, self._retention_days)
        if expires is not None:
            # DynamoDB TTL (template.yaml) deletes the item some time after this; a retried
            # job is no longer terminal, so its next write REMOVEs the attribute again.
            item["ExpiresAt"] = {"N": str(expires)}
        return item

    # --- registration ----------------------------------------------------------------------

    def register(self, job: Job) -> Registered:
        """Register a New job. Idempotent: a job whose id exists already (same client token,
        hence same id) is not written again; the stored one is returned."""
        tag = self._first_tag(self._get_owner(job.owner), job.created_at)
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
        self._advance_owner_clock(job.owner, tag + FAIR_SHARE_QUANTUM)
        return Registered(tagged, created=True)

    def _get_owner(self, owner: Owner) -> dict | None:
        key = {"JobId": {"S": f"owner#{owner.key}"}}
        return self._call("get_item", TableName=self._table, Key=key, ConsistentRead=True).get("Item")

    @staticmethod
    def _first_tag(owner_item: dict | None, now: datetime) -> float:
        """The fair-share tag of an owner's next queued job: now, or later if the owner's
        earlier jobs already hold the queue's virtual time up to then."""
        next_tag = float(owner_item["NextTag"]["N"]) if owner_item else 0.0
        return max(_epoch(now), next_tag)

    def _advance_owner_clock(self, owner: Owner, next_tag: float) -> None:
        """Move the owner's fair-share clock forward (never back). Two registrations racing
        may share a tag; that only ties their order, which creation time then breaks."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": f"owner#{owner.key}"}},
                UpdateExpression="SET NextTag = :t, RecordType = :r",
                ConditionExpression="attribute_not_exists(NextTag) OR NextTag < :t",
                ExpressionAttributeValues={":t": {"N": repr(next_tag)}, ":r": {"S": "owner"}},
            )
        except ClientError:
            pass  # another registration moved it further already

    def register_many(
        self,
        jobs: Sequence[Job],
        batch_id: str,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Register a batch (a sweep) with BatchWriteItem, retrying unprocessed items; return
        the batch's job ids.

        Idempotent on ``batch_id``: a batch record is written first, conditionally; a repeat
        of a finished batch writes nothing, and a repeat of one that died half-way writes only
        the jobs that are missing (existing jobs may have moved on and are never overwritten).
        """
        if not jobs:
            return []
        owner = jobs[0].owner
        now = jobs[0].created_at
        batch_key = {"JobId": {"S": f"sweep#{batch_id}"}}
        ids = [job.job_id for job in jobs]
        try:
            self._call(
                "put_item",
                TableName=self._table,
                Item={
                    **batch_key,
                    "RecordType": {"S": "sweep"},
                    "State": {"S": "registering"},
                    "JobIds": {"L": [{"S": i} for i in ids]},
                    "OwnerKey": {"S": owner.key},
                    "CreatedAt": {"S": format_utc(now)},
                    "Tally": {"M": {}},
                },
                ConditionExpression="attribute_not_exists(JobId)",
            )
            missing = list(jobs)
        except ClientError:
            record = self._call("get_item", TableName=self._table, Key=batch_key, ConsistentRead=True)["Item"]
            if [v["S"] for v in record["JobIds"]["L"]] != ids:
                raise DuplicateBatch(f"batch {batch_id} was registered with other jobs") from None
            if record["State"]["S"] == "registered":
                return ids
            existing = self.existing_ids(ids)
            missing = [job for job in jobs if job.job_id not in existing]

        if missing:
            first = self._first_tag(self._get_owner(owner), now)
            tagged = [
                job.model_copy(update={"queue_tag": first + i * FAIR_SHARE_QUANTUM}) for i, job in enumerate(missing)
            ]
            self._batch_put(tagged, on_progress, total=len(jobs), already=len(jobs) - len(missing))
            self._advance_owner_clock(owner, first + len(missing) * FAIR_SHARE_QUANTUM)
        self._call(
            "update_item",
            TableName=self._table,
            Key=batch_key,
            UpdateExpression="SET #s = :done",
            ExpressionAttributeNames={"#s": "State"},
            ExpressionAttributeValues={":done": {"S": "registered"}},
        )
        return ids

    def _batch_put(
        self, jobs: Sequence[Job], on_progress: Callable[[int, int], None] | None, *, total: int, already: int
    ) -> None:
        done = already
        for start in range(0, len(jobs), BATCH_WRITE_SIZE):
            chunk = jobs[start : start + BATCH_WRITE_SIZE]
            requests = {self._table: [{"PutRequest": {"Item": self._item(job)}} for job in chunk]}
            for round_ in range(MAX_UNPROCESSED_ROUNDS):
                answer = self._call("batch_write_item", RequestItems=requests)
                requests = answer.get("UnprocessedItems") or {}
                if not requests:
                    break
                # DynamoDB throttled part of the batch: back off (full jitter) and resend the rest.
                self._sleep(random.uniform(0, min(2.0, 0.05 * 2**round_)))
            else:
                raise StoreUnavailable(f"DynamoDB kept {len(requests.get(self._table, []))} items unprocessed")
            done += len(chunk)
            if on_progress:
                on_progress(done, total)

    # --- reads ------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        """The job; :class:`JobNotFound` if there is none."""
        if "#" in job_id:
            raise JobNotFound(job_id)
        answer = self._call("get_item", TableName=self._table, Key={"JobId": {"S": job_id}}, ConsistentRead=True)
        item = answer.get("Item")
        if item is None or item.get("RecordType", {}).get("S", "job") != "job":
            raise JobNotFound(job_id)
        self.metrics.items_read += 1
        return from_item(item)

    def get_many(self, job_ids: Iterable[str]) -> list[Job]:
        """The jobs that exist among ``job_ids`` (BatchGetItem), in the order asked."""
        ids = list(dict.fromkeys(job_ids))
        found = {job.job_id: job for job in map(from_item, self._batch_get(ids))}
        return [found[i] for i in ids if i in found]

    def existing_ids(self, job_ids: Iterable[str]) -> set[str]:
        """Which of ``job_ids`` exist (reads keys only)."""
        return {item["JobId"]["S"] for item in self._batch_get(list(dict.fromkeys(job_ids)), keys_only=True)}

    def _batch_get(self, ids: list[str], *, keys_only: bool = False) -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), BATCH_GET_SIZE):
            keys = [{"JobId": {"S": i}} for i in ids[start : start + BATCH_GET_SIZE]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            if keys_only:
                request[self._table]["ProjectionExpression"] = "JobId"
            for round_ in range(MAX_UNPROCESSED_ROUNDS):
                answer = self._call("batch_get_item", RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    self.metrics.items_read += 1
                    yield item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(random.uniform(0, min(2.0, 0.05 * 2**round_)))
            else:
                raise StoreUnavailable("DynamoDB kept keys unprocessed")

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Query pages, counting the items DynamoDB read."""
        kwargs = {"TableName": self._table, **kwargs}
        while True:
            answer = self._call("query", **kwargs)
            self.metrics.items_read += answer.get("ScannedCount", 0)
            yield answer
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _query_jobs(self, limit: int | None, **kwargs: Any) -> list[Job]:
        jobs: list[Job] = []
        for answer in self._query(**({"Limit": limit} if limit else {}), **kwargs):
            jobs.extend(from_item(item) for item in answer.get("Items", []))
            if limit is not None and len(jobs) >= limit:
                return jobs[:limit]
            if limit is not None:
                kwargs["Limit"] = limit - len(jobs)
        return jobs

    def _queue_partition(self, partition: str, limit: int | None, upto: str | None = None) -> list[Job]:
        condition = "QueueKey = :k"
        values: dict[str, Any] = {":k": {"S": partition}}
        if upto is not None:
            condition += " AND QueueSort <= :upto"
            values[":upto"] = {"S": upto}
        return self._query_jobs(
            limit, IndexName="Queue", KeyConditionExpression=condition, ExpressionAttributeValues=values
        )

    def ready_jobs(self, limit: int | None) -> list[Job]:
        """New jobs no launcher holds, highest priority first, fair across owners, then oldest."""
        return self._queue_partition("ready", limit)

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
            yield from (from_item(item) for item in answer.get("Items", []))

    def parked_types(self) -> list[str]:
        """The instance types that have parked jobs (one small query per type, not per job)."""
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

    def active_jobs(self, limit: int | None = None) -> list[Job]:
        """Launched / InProgress / Stopping jobs, least recently changed first."""
        return self._query_jobs(
            limit,
            IndexName="Active",
            KeyConditionExpression="ActiveKey = :k",
            ExpressionAttributeValues={":k": {"S": "active"}},
        )

    def outbox_job_ids(self, limit: int | None = None) -> list[str]:
        """Ids of jobs with undelivered notifications, oldest change first."""
        ids: list[str] = []
        for answer in self._query(
            IndexName="Outbox",
            KeyConditionExpression="OutboxKey = :k",
            ExpressionAttributeValues={":k": {"S": "pending"}},
            **({"Limit": limit} if limit else {}),
        ):
            ids.extend(item["JobId"]["S"] for item in answer.get("Items", []))
            if limit is not None and len(ids) >= limit:
                return ids[:limit]
        return ids

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
            kwargs["ExclusiveStartKey"] = _decode_cursor(cursor)
        answer = self._call("query", TableName=self._table, **kwargs)
        self.metrics.items_read += answer.get("ScannedCount", 0)
        jobs = [from_item(item) for item in answer.get("Items", [])]
        last = answer.get("LastEvaluatedKey")
        return Page(jobs, _encode_cursor(last) if last else None)

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
            for item in answer.get("Items", []):
                yield from_item(item)

    # --- writes -----------------------------------------------------------------------------

    def _conditional_write(self, before: Job, after: Job) -> WriteOutcome:
        """Write ``after`` if the stored job is still at ``before``'s status and version.

        An UpdateItem, not a PutItem: it sets every attribute the job has except the
        notifiers' delivery bookkeeping (``Delivered``, ``DeliveryLease``), which only the
        dispatcher writes; a transition computed from an older read must not roll it back
        (that would send a notification twice).
        """
        item = self._item(after)
        old_item = self._item(before)
        names: dict[str, str] = {}
        values: dict[str, Any] = {":s": {"S": before.status.value}, ":v": {"N": str(before.version)}}
        sets: list[str] = []
        for i, (attribute, value) in enumerate(item.items()):
            if attribute in _WRITER_OWNED or attribute == "JobId":
                continue
            # Only what changed (a job item is a few KB; most writes touch a few attributes).
            # Version always changes, and index keys must be written whenever they differ.
            if old_item.get(attribute) == value and attribute != "OutboxKey":
                continue
            names[f"#a{i}"] = attribute
            values[f":a{i}"] = value
            sets.append(f"#a{i} = :a{i}")
        removes = []
        for j, attribute in enumerate(sorted((_REMOVABLE & set(old_item)) - set(item))):
            names[f"#r{j}"] = attribute
            removes.append(f"#r{j}")
        names["#status"] = "JobStatus"
        names["#version"] = "Version"
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": before.job_id}},
                UpdateExpression=expression,
                ConditionExpression="#status = :s AND #version = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            old = exc.response.get("Item")
            current = None
            if old:
                try:
                    current = from_item(old)
                except ValidationError:
                    current = None
            return LostRace(before.job_id, before.status, before.version, current)
        return Applied(after)

    def transition(
        self, job: Job, to_status: JobStatus, *, at: datetime, reason: str = "", **changes: Any
    ) -> WriteOutcome:
        """Move ``job`` (as read) to ``to_status``; raises IllegalTransition for an illegal
        move, returns LostRace if the stored job is no longer at ``job``'s status and version."""
        return self._conditional_write(job, transition(job, to_status, at=at, reason=reason, **changes))

    def update(self, job: Job, *, at: datetime, **changes: Any) -> WriteOutcome:
        """Change bookkeeping fields of ``job`` (not its status), conditionally on its version."""
        if "status" in changes:
            raise ValueError("status changes go through transition()")
        after = job.model_copy(update={**changes, "updated_at": at, "version": job.version + 1})
        return self._conditional_write(job, after)

    # --- notification delivery (the outbox) -------------------------------------------------

    def acquire_delivery(self, job_id: str, token: str, now: datetime, until: datetime) -> Job | None:
        """Take the job's delivery lease (so two dispatchers never send the same change twice)
        and return the job as stored, with its ``delivered`` map; None if another holds it."""
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
                ReturnValues="ALL_NEW",
            )
        except ClientError:
            return None
        self.metrics.items_read += 1
        return from_item(answer["Attributes"])

    def finish_delivery(self, job: Job, token: str, delivered: dict[str, int], *, all_done: bool) -> None:
        """Record what was delivered and release the lease; when everything up to the job's
        last change is delivered and the job has not changed since, leave the Outbox index."""
        values = {":d": {"M": {k: {"N": str(v)} for k, v in delivered.items()}}, ":t": {"S": token}}
        names = {"#token": "Token"}
        if all_done:
            try:
                self._call(
                    "update_item",
                    TableName=self._table,
                    Key={"JobId": {"S": job.job_id}},
                    UpdateExpression="SET Delivered = :d REMOVE DeliveryLease, OutboxKey, OutboxSort",
                    ConditionExpression="DeliveryLease.#token = :t AND Version = :v",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={**values, ":v": {"N": str(job.version)}},
                )
                return
            except ClientError:
                pass  # the job changed meanwhile: its new change keeps it in the outbox
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job.job_id}},
                UpdateExpression="SET Delivered = :d REMOVE DeliveryLease",
                ConditionExpression="DeliveryLease.#token = :t",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError:
            pass  # our lease expired and another dispatcher took over: it re-reads Delivered

    def recent_jobs(self, *, limit: int = 20, cursor: str | None = None, today: datetime, max_days: int = 90) -> Page:
        """Everyone's jobs, newest first, walking the ByDay index back from ``today``."""
        state = _decode_cursor(cursor, required="Day") if cursor else {"Day": format_utc(today)[:10]}
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
            jobs.extend(from_item(item) for item in answer.get("Items", []))
            start_key = answer.get("LastEvaluatedKey")
            if start_key and len(jobs) >= limit:
                return Page(jobs, _encode_cursor({"Day": day.isoformat(), "Key": start_key}))
            if not start_key:
                day = day.fromordinal(day.toordinal() - 1)
        more = day.toordinal() >= oldest
        return Page(jobs, _encode_cursor({"Day": day.isoformat()}) if more else None)

    def set_thread(self, job_id: str, channel_id: str, thread_ts: str) -> None:
        """Record the job's Slack thread root (once: a second root never replaces the first)."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key={"JobId": {"S": job_id}},
                UpdateExpression="SET Slack = :s",
                ConditionExpression="attribute_exists(JobId) AND (attribute_not_exists(Slack.ThreadTs) OR Slack.ThreadTs = :null)",
                ExpressionAttributeValues={
                    ":s": {"M": {"ChannelId": {"S": channel_id}, "ThreadTs": {"S": thread_ts}}},
                    ":null": {"NULL": True},
                },
            )
        except ClientError:
            pass  # a root exists already: keep it

    def bump_sweep_tally(self, sweep_id: str, outcome: str) -> dict[str, int]:
        """Count one more job of the sweep ending with ``outcome``; return the tally."""
        answer = self._call(
            "update_item",
            TableName=self._table,
            Key={"JobId": {"S": f"sweep#{sweep_id}"}},
            UpdateExpression="ADD Tally.#o :one",
            ConditionExpression="attribute_exists(JobId)",
            ExpressionAttributeNames={"#o": outcome},
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="ALL_NEW",
        )
        tally = _plain(_deserializer.deserialize(answer["Attributes"].get("Tally", {"M": {}})))
        return {str(k): int(v) for k, v in tally.items()}

    def bump_sweep_tally_once(self, sweep_id: str, outcome: str, marker: str, expires_at: int) -> dict[str, int]:
        """Count one more job of the sweep ending with ``outcome``, once per ``marker`` (a job's
        change): the marker record and the count are written in one transaction, so a failure
        between them can neither count a change twice nor lose it. Returns the tally."""
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        # An Update that creates the marker (the roles that deliver may update
                        # items; none needs PutItem for this).
                        "Update": {
                            "TableName": self._table,
                            "Key": {"JobId": {"S": f"tallied#{marker}"}},
                            "UpdateExpression": "SET RecordType = :r, ExpiresAt = :e",
                            "ConditionExpression": "attribute_not_exists(JobId)",
                            "ExpressionAttributeValues": {":r": {"S": "tallied"}, ":e": {"N": str(expires_at)}},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": {"JobId": {"S": f"sweep#{sweep_id}"}},
                            "UpdateExpression": "ADD Tally.#o :one",
                            "ConditionExpression": "attribute_exists(JobId)",
                            "ExpressionAttributeNames": {"#o": outcome},
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    },
                ],
            )
        except ClientError:
            pass  # counted before (the marker exists), or the sweep record is gone
        record = self.get_record("sweep", sweep_id) or {}
        return {str(k): int(v) for k, v in (record.get("Tally") or {}).items()}

    # --- small records ----------------------------------------------------------------------

    def put_record(
        self, kind: str, key: str, attributes: dict[str, Any], *, only_if: dict[str, Any] | None = None, only_if_absent: bool = False
    ) -> bool:
        """Write a small non-job record (``<kind>#<key>``), e.g. a preset. With ``only_if_absent``
        it is written only if there is none yet; with ``only_if`` only while the stored record
        has those attribute values. Returns whether it was written."""
        item = {"JobId": f"{kind}#{key}", "RecordType": kind, **attributes}
        plain = json.loads(json.dumps(item), parse_float=Decimal)
        request: dict[str, Any] = {"TableName": self._table, "Item": {k: _serializer.serialize(v) for k, v in plain.items()}}
        if only_if_absent:
            request["ConditionExpression"] = "attribute_not_exists(JobId)"
        elif only_if:
            request["ConditionExpression"] = " AND ".join(f"#c{i} = :c{i}" for i in range(len(only_if)))
            request["ExpressionAttributeNames"] = {f"#c{i}": name for i, name in enumerate(only_if)}
            request["ExpressionAttributeValues"] = {
                f":c{i}": _serializer.serialize(value) for i, value in enumerate(only_if.values())
            }
        try:
            self._call("put_item", **request)
        except ClientError:
            return False
        return True

    def set_record_entry(self, kind: str, key: str, map_attribute: str, entry: str, value: Any | None) -> None:
        """Set (or, with None, remove) one entry of a map attribute of a small record, without
        rewriting the rest: concurrent writers of different entries never lose each other's."""
        record_key = {"JobId": {"S": f"{kind}#{key}"}}
        self._call(
            "update_item",
            TableName=self._table,
            Key=record_key,
            UpdateExpression="SET #m = if_not_exists(#m, :empty), RecordType = :kind",
            ExpressionAttributeNames={"#m": map_attribute},
            ExpressionAttributeValues={":empty": {"M": {}}, ":kind": {"S": kind}},
        )
        names = {"#m": map_attribute, "#e": entry}
        if value is None:
            self._call("update_item", TableName=self._table, Key=record_key, UpdateExpression="REMOVE #m.#e", ExpressionAttributeNames=names)
        else:
            self._call(
                "update_item",
                TableName=self._table,
                Key=record_key,
                UpdateExpression="SET #m.#e = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":v": _serializer.serialize(value)},
            )

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        answer = self._call("get_item", TableName=self._table, Key={"JobId": {"S": f"{kind}#{key}"}}, ConsistentRead=True)
        item = answer.get("Item")
        if not item:
            return None
        plain = {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}
        plain.pop("JobId", None)
        plain.pop("RecordType", None)
        return plain

    def delete_record(self, kind: str, key: str) -> None:
        self._call("delete_item", TableName=self._table, Key={"JobId": {"S": f"{kind}#{key}"}})


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def _decode_cursor(cursor: str, *, required: str = "JobId") -> dict[str, Any]:
    """A cursor this store handed out (``required`` names the key every such cursor has)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError("that page cursor is not one Trainbot gave out") from exc
    if not isinstance(key, dict) or required not in key:
        raise ValueError("that page cursor is not one Trainbot gave out")
    return key
