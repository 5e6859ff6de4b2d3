"""An in-memory job store with DynamoJobStore's semantics, for fast unit tests.

It implements :class:`backend.ports.JobStore` as the DynamoDB store does, index by index:
conditional writes on status and version (:class:`LostRace` with what is stored), claim
leases, the queue's partitions (ready in launch order, waiting by due time, claimed by lease
expiry), the outbox and its delivery leases (a job write never rolls back ``delivered`` or the
Slack thread), idempotent registration by job id (hence client token) and by sweep id, the
owners' fair-share clocks, small ``<kind>#<key>`` records and opaque page cursors.
tests/contract/test_store_contract.py runs one suite against both stores.
"""

from __future__ import annotations

import base64
import functools
import heapq
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from backend.domain import fairness, notice, sweeps
from backend.domain.model import Job, Owner, SlackThread, transition
from backend.domain.queue_order import QueuedJob
from backend.domain.records import RecordKind
from backend.domain.status import ACTIVE, JobStatus
from backend.domain.tally import end_slice
from backend.domain.times import format_utc, to_utc
from backend.errors import JobNotFound, UnreadableItem
from backend.ports import BATCH_LEASE, Applied, BatchBusy, DuplicateBatch, LostRace, Page, Registered, SweepEnd, WriteOutcome


@dataclass
class _DeliveryLease:
    token: str
    until: str  # format_utc, compared as DynamoDB compares the stored string


def _normalized(value: Any) -> Any:
    """What a value reads back as after a round trip through DynamoDB (numbers as int when
    integral, tuples as lists)."""
    value = json.loads(json.dumps(value))
    return _ints(value)


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).decode()


def _decode(cursor: str, required: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError("that page cursor is not one Trainbot gave out") from exc
    if not isinstance(state, dict) or required not in state:
        raise ValueError("that page cursor is not one Trainbot gave out")
    return state


P = ParamSpec("P")
R = TypeVar("R")


def _atomic(method: Callable[P, R]) -> Callable[P, R]:
    """One request at a time, as DynamoDB applies each request atomically (the race tests
    run twenty threads against one store)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        store = args[0]
        with store._lock:  # type: ignore[attr-defined]
            return method(*args, **kwargs)

    return wrapper


def _created(job: Job) -> str:
    return format_utc(job.created_at)


class MemoryJobStore:
    """:class:`backend.ports.JobStore` in a few dicts; each write is atomic (one lock)."""

    def __init__(self, *, notify_targets: Sequence[str] = ()) -> None:
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self._leases: dict[str, _DeliveryLease] = {}
        self._folded: dict[str, int] = {}  # job id -> version whose transition took its lease
        self._outbox: dict[str, str] = {}  # job id -> its sort key while some change is undelivered
        self._notify_targets = tuple(notify_targets)
        self.writes = 0  # conditional job writes applied (tests may assert a path wrote nothing)
        self.delivery_writes = 0  # the outbox's own writes: lease taken or refused, extended, finished
        self._interleaved: list[Callable[[], None]] = []
        # Items this version cannot decode (see plant_unreadable): job id -> index partition.
        self._unreadable: dict[str, str] = {}
        self.unreadable_items = 0  # skipped by listings (DynamoJobStore: metrics.unreadable_items)
        # Called with (item before, item after) for every write of a job item, the outbox's
        # included: how bench/scale.py prices writes (base table and each index) from item sizes.
        self.write_observer: Callable[[Job | None, Job], None] | None = None

    def plant_unreadable(self, job_id: str, partition: str) -> None:
        """Store an item this version cannot decode (a status a newer version wrote, say) in
        index partition ``partition`` (ready, waiting, claimed, parked or active), as
        DynamoJobStore reads one: listings of that partition skip and count it, get raises
        UnreadableItem."""
        self._unreadable[job_id] = partition

    def _skip_unreadable(self, partition: str) -> None:
        self.unreadable_items += sum(1 for p in self._unreadable.values() if p == partition)

    def interleave(self, action: Callable[[], None]) -> None:
        """Run ``action`` (another actor's move) just before the next conditional job write
        checks its condition: how a test stages a lost race at an exact point."""
        self._interleaved.append(action)

    # --- wiring -----------------------------------------------------------------------------

    @property
    def notify_targets(self) -> tuple[str, ...]:
        return self._notify_targets

    def set_notify_targets(self, targets: Sequence[str]) -> None:
        self._notify_targets = tuple(targets)

    # --- registration -----------------------------------------------------------------------

    @_atomic
    def register(self, job: Job) -> Registered:
        if job.job_id in self._jobs:
            return Registered(self.get(job.job_id), created=False)
        tag = fairness.first_tag(self._owner_next_tag(job.owner), job.created_at)
        tagged = job.model_copy(update={"queue_tag": tag})
        self._store(tagged)
        self._advance_owner_clock(job.owner, fairness.next_clock(tag, 1))
        return Registered(tagged.model_copy(deep=True), created=True)

    @_atomic
    def register_many(
        self, jobs: Sequence[Job], batch_id: str, on_progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        if not jobs:
            return []
        ids = [job.job_id for job in jobs]
        batch = self._records.get((RecordKind.SWEEP.value, batch_id))
        until = format_utc(jobs[0].created_at + BATCH_LEASE)
        owner = jobs[0].owner
        if batch is not None:
            if sweeps.batch_job_ids(batch) != ids:
                raise DuplicateBatch(f"batch {batch_id} was registered with other jobs")
            if batch["State"] == "registered":
                return ids
            # Held by a live registration (a repeat from its own progress callback, here):
            # only a dead writer's batch is taken over, as DynamoJobStore does.
            if "Until" in batch and batch["Until"] > format_utc(jobs[0].created_at):
                raise BatchBusy(batch_id)
            batch["Until"] = until
            # The missing jobs are tagged as the first writer would have (as DynamoJobStore does).
            # A record without it (an older version's) says nothing: tagged afresh.
            first = float(batch["FirstTag"]) if "FirstTag" in batch else fairness.first_tag(self._owner_next_tag(owner), jobs[0].created_at)
        else:
            first = fairness.first_tag(self._owner_next_tag(owner), jobs[0].created_at)
            batch = self._records[(RecordKind.SWEEP.value, batch_id)] = {
                "State": "registering",
                "Until": until,
                **sweeps.batch_record_ids(ids),
                "OwnerKey": owner.key,
                "CreatedAt": format_utc(jobs[0].created_at),
                "Registered": 0,
                "FirstTag": first,
            }
        tags = fairness.batch_tags(first, len(ids))
        missing = [i for i, job in enumerate(jobs) if job.job_id not in self._jobs]
        if missing:
            done = len(jobs) - len(missing)
            for i in missing:
                self._store(jobs[i].model_copy(update={"queue_tag": tags[i]}))
                done += 1
                if on_progress:
                    on_progress(done, len(jobs))
            self._advance_owner_clock(owner, fairness.next_clock(first, len(jobs)))
        batch["State"], batch["Registered"] = "registered", len(jobs)
        return ids

    def _owner_next_tag(self, owner: Owner) -> float | None:
        record = self._records.get((RecordKind.OWNER.value, owner.key))
        return float(record["NextTag"]) if record else None

    def _advance_owner_clock(self, owner: Owner, next_tag: float) -> None:
        current = self._owner_next_tag(owner)
        if current is None or current < next_tag:
            self._records[(RecordKind.OWNER.value, owner.key)] = {"NextTag": next_tag}

    # --- reads by id ------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        if job_id in self._unreadable:
            raise UnreadableItem(job_id)
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job.model_copy(deep=True)

    def get_many(self, job_ids: Iterable[str]) -> list[Job]:
        return [self.get(i) for i in dict.fromkeys(job_ids) if i in self._jobs]

    def existing_ids(self, job_ids: Iterable[str]) -> set[str]:
        return {i for i in job_ids if i in self._jobs}

    # --- conditional writes -----------------------------------------------------------------

    def transition(
        self, job: Job, to_status: JobStatus, *, at: datetime, reason: str = "", **changes: Any
    ) -> WriteOutcome:
        after = transition(job, to_status, at=at, reason=reason, **changes)
        outcome = self._conditional_write(job, after)
        if isinstance(outcome, Applied) and self._notify_targets and notice.is_urgent(after, self._notify_targets):
            return self._fold_lease(outcome, job)
        return outcome

    @_atomic
    def _fold_lease(self, outcome: Applied, before: Job) -> Applied:
        """The delivery lease the DynamoDB store takes in the transition write itself (if no
        other dispatcher holds a live one); its holder gets the delivery marks as stored, and
        (a lease never given back) its holder's sends in doubt, up to the change before this
        write's (``before``: the job the write expected, as stored until then)."""
        after = outcome.job
        lease = self._leases.get(after.job_id)
        if lease is not None and not lease.until < format_utc(after.updated_at - notice.SEND_BOUND):
            return outcome
        self._leases[after.job_id] = _DeliveryLease(f"v{after.version}", format_utc(after.updated_at + notice.DELIVERY_LEASE))
        self._folded[after.job_id] = after.version
        stored = self._jobs[after.job_id]
        if lease is not None:  # never given back: its holder's sends are in doubt
            was = before.model_copy(update={"delivered": stored.delivered, "doubts": stored.doubts})
            stored = notice.taken_over(was, self._notify_targets)
        return Applied(
            after.model_copy(update={"delivered": dict(stored.delivered), "doubts": stored.doubts, "slack": stored.slack or after.slack})
        )

    def holds_delivery(self, job: Job) -> bool:
        return self._folded.pop(job.job_id, None) == job.version

    def update(self, job: Job, *, at: datetime, **changes: Any) -> WriteOutcome:
        if "status" in changes:
            raise ValueError("status changes go through transition()")
        after = job.model_copy(update={**changes, "updated_at": at, "version": job.version + 1})
        return self._conditional_write(job, after)

    @_atomic
    def _conditional_write(self, before: Job, after: Job) -> WriteOutcome:
        if self._interleaved:
            # Only those queued before this write; what an action queues waits for the next.
            actions, self._interleaved = self._interleaved, []
            for action in actions:
                action()
        stored = self._jobs.get(before.job_id)
        if stored is None or stored.status is not before.status or stored.version != before.version:
            current = stored.model_copy(deep=True) if stored is not None else None
            return LostRace(before.job_id, before.status, before.version, current)
        # The dispatcher's bookkeeping and the thread root are never written by a job write.
        kept = after.model_copy(update={"delivered": dict(stored.delivered), "doubts": stored.doubts, "slack": stored.slack})
        self._store(kept, outbox_view=after)
        self.writes += 1
        return Applied(after)

    def _store(self, job: Job, outbox_view: Job | None = None) -> None:
        """Store ``job``; it enters (or stays in) the outbox when, as the writer read it
        (``outbox_view``), some target lacks its last change. Only finish_delivery takes it out."""
        self._replace(job.job_id, job.model_copy(deep=True))
        view = outbox_view or job
        due = notice.delivery_due(view, self._notify_targets)
        if due is not None:
            self._outbox[job.job_id] = f"{format_utc(due)}#{job.job_id}"

    def _replace(self, job_id: str, job: Job) -> None:
        before = self._jobs.get(job_id)
        self._jobs[job_id] = job
        if self.write_observer is not None:
            self.write_observer(before, job)

    @_atomic
    def set_thread(self, job_id: str, channel_id: str, thread_ts: str) -> None:
        stored = self._jobs.get(job_id)
        if stored is None or (stored.slack is not None and stored.slack.thread_ts is not None):
            return
        slack = SlackThread(channel_id=channel_id, thread_ts=thread_ts)
        self._replace(job_id, stored.model_copy(update={"slack": slack}))

    # --- the launch queue -------------------------------------------------------------------

    def _queued(self) -> Iterator[Job]:
        # A held job (waiting for approval) sits in the Queue index's ``held`` partition only.
        return (job for job in self._jobs.values() if job.is_queued and not job.is_held)

    def ready_jobs(self, limit: int | None) -> list[Job]:
        self._skip_unreadable("ready")
        ready = [j for j in self._queued() if j.lease is None and j.parked_at is None and j.status is not JobStatus.RETRYING]
        return self._copies(sorted(ready, key=fairness.launch_order), limit)

    def held_jobs(self, limit: int | None) -> list[Job]:
        held = [j for j in self._jobs.values() if j.is_held]
        return self._copies(sorted(held, key=lambda j: (format_utc(j.created_at), j.job_id)), limit)

    def held_count(self) -> int:
        return sum(1 for j in self._jobs.values() if j.is_held)

    def queued_jobs(self) -> list[QueuedJob]:
        for partition in ("ready", "waiting", "claimed", "parked"):
            self._skip_unreadable(partition)
        return [QueuedJob.of(j) for j in self._queued()]

    def retrying_due(self, now: datetime, limit: int | None) -> list[Job]:
        upto = format_utc(now) + "#~"
        self._skip_unreadable("waiting")

        def sort(job: Job) -> str:
            return f"{format_utc(job.next_attempt_at or job.updated_at)}#{job.job_id}"

        waiting = [
            j for j in self._queued()
            if j.lease is None and j.parked_at is None and j.status is JobStatus.RETRYING and sort(j) <= upto
        ]
        return self._copies(sorted(waiting, key=sort), limit)

    def expired_claims(self, now: datetime, limit: int | None) -> list[Job]:
        upto = format_utc(now) + "#~"
        self._skip_unreadable("claimed")

        def sort(job: Job) -> str:
            assert job.lease is not None
            return f"{format_utc(job.lease.expires_at)}#{job.job_id}"

        claimed = [j for j in self._queued() if j.lease is not None and sort(j) <= upto]
        return self._copies(sorted(claimed, key=sort), limit)

    def due_for_launch(self, now: datetime, limit: int) -> list[Job]:
        return list(self.iter_due(now, limit))

    def iter_due(self, now: datetime, limit: int, page: int = 50) -> Iterator[Job]:
        reconcile = self.expired_claims(now, limit)
        retrying = sorted(self.retrying_due(now, limit), key=fairness.launch_order)
        merged = heapq.merge(retrying, self.ready_jobs(None), key=fairness.launch_order)
        yield from itertools.islice(itertools.chain(reconcile, merged), limit)

    def _parked(self) -> list[Job]:
        parked = [j for j in self._queued() if j.lease is None and j.parked_at is not None]
        return sorted(parked, key=lambda j: (j.park_key, fairness.launch_order(j)))

    def parked_types(self) -> list[str]:
        return sorted({j.park_key for j in self._parked()})

    def parked_jobs(self, instance_type: str, limit: int) -> list[Job]:
        self._skip_unreadable("parked")
        return self._copies([j for j in self._parked() if j.park_key == instance_type], limit)

    # --- active, owner, history -------------------------------------------------------------

    def active_jobs(self, limit: int | None = None) -> list[Job]:
        self._skip_unreadable("active")
        active = [j for j in self._jobs.values() if j.status in ACTIVE]
        return self._copies(sorted(active, key=lambda j: (format_utc(j.active_since), j.job_id)), limit)

    def active_places(self) -> list[tuple[str, str]]:
        self._skip_unreadable("active")
        active = [j for j in self._jobs.values() if j.status in ACTIVE]
        return sorted((f"{format_utc(j.active_since)}#{j.job_id}", j.job_id) for j in active)

    def active_usage(self) -> dict[str, int]:
        usage: dict[str, int] = {}
        for job in self._jobs.values():
            if job.status in ACTIVE:
                usage[job.use_key] = usage.get(job.use_key, 0) + job.job_args.instance_count
        return usage

    def jobs_of_owner(self, owner: Owner, *, limit: int = 20, cursor: str | None = None) -> Page:
        mine = sorted((j for j in self._jobs.values() if j.owner == owner), key=lambda j: (_created(j), j.job_id), reverse=True)
        if cursor:
            after = _decode(cursor, "JobId")
            mine = [j for j in mine if (_created(j), j.job_id) < (after["CreatedAt"], after["JobId"])]
        page = mine[:limit]
        more = len(mine) > limit
        last = page[-1] if page else None
        next_cursor = _encode({"JobId": last.job_id, "CreatedAt": _created(last)}) if more and last else None
        return Page(self._copies(page, None), next_cursor)

    def jobs_created_on(self, day: str, *, since: str | None = None, until: str | None = None) -> Iterator[Job]:
        found = [
            j
            for j in self._jobs.values()
            if _created(j)[:10] == day and (since is None or _created(j) >= since) and (until is None or _created(j) <= until)
        ]
        yield from self._copies(sorted(found, key=lambda j: (_created(j), j.job_id)), None)

    def count_created(self, since: str, until: str) -> int:
        return sum(1 for j in self._jobs.values() if since <= _created(j) <= until)

    def count_owned(self, owner: Owner, since: str, until: str) -> int:
        return sum(1 for j in self._jobs.values() if j.owner == owner and since <= _created(j) <= until)

    def jobs_ended_in(self, slice_name: str) -> list[Job]:
        found = [j for j in self._jobs.values() if j.is_terminal and j.history and end_slice(format_utc(j.history[-1].at)) == slice_name]
        return list(self._copies(sorted(found, key=lambda j: j.job_id), None))

    def recent_jobs(self, *, limit: int = 20, cursor: str | None = None, today: datetime, max_days: int = 90) -> Page:
        oldest = (to_utc(today) - timedelta(days=max_days)).date().isoformat()
        newest = format_utc(today)[:10]
        jobs = sorted(
            (j for j in self._jobs.values() if oldest <= _created(j)[:10] <= newest),
            key=lambda j: (_created(j), j.job_id),
            reverse=True,
        )
        if cursor:
            after = _decode(cursor, "Day")
            jobs = [j for j in jobs if (_created(j), j.job_id) < (after["CreatedAt"], after["JobId"])]
        page = jobs[:limit]
        more = len(jobs) > limit
        last = page[-1] if page else None
        state = {"Day": _created(last)[:10], "CreatedAt": _created(last), "JobId": last.job_id} if last else None
        return Page(self._copies(page, None), _encode(state) if more and state else None)

    @staticmethod
    def _copies(jobs: Sequence[Job], limit: int | None) -> list[Job]:
        return [j.model_copy(deep=True) for j in (jobs[:limit] if limit is not None else jobs)]

    # --- the outbox -------------------------------------------------------------------------

    def outbox_job_ids(self, limit: int | None = None, *, due_by: datetime | None = None) -> list[str]:
        upto = format_utc(due_by) + "#~" if due_by is not None else None
        ids = [job_id for job_id, sort in sorted(self._outbox.items(), key=lambda kv: kv[1]) if upto is None or sort <= upto]
        return ids[:limit] if limit else ids

    @_atomic
    def acquire_delivery(self, job_id: str, token: str, now: datetime, until: datetime) -> Job | None:
        if job_id not in self._jobs:
            return None
        lease = self._leases.get(job_id)
        self.delivery_writes += 1  # taken or refused, the conditional write is paid for
        if lease is not None and not lease.until < format_utc(now):
            return None
        self._leases[job_id] = _DeliveryLease(token, format_utc(until))
        job = self.get(job_id)
        # A lease still there was never given back (finish_delivery removes it).
        return notice.taken_over(job, self._notify_targets) if lease is not None else job

    @_atomic
    def extend_delivery(self, job: Job, token: str, delivered: dict[str, int], until: datetime) -> bool:
        lease = self._leases.get(job.job_id)
        stored = self._jobs.get(job.job_id)
        if lease is None or lease.token != token or stored is None:
            return False
        self.delivery_writes += 1
        self._replace(job.job_id, stored.model_copy(update={"delivered": dict(delivered)}))
        lease.until = format_utc(until)
        return True

    @_atomic
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
        lease = self._leases.get(job.job_id)
        stored = self._jobs.get(job.job_id)
        if lease is None or lease.token != token or stored is None:
            return False  # our lease expired and another dispatcher took over: it re-reads delivered
        self.delivery_writes += 1
        update: dict[str, Any] = {"delivered": dict(delivered)}
        if doubts is not None:
            update["doubts"] = dict(doubts) or None
        self._replace(job.job_id, stored.model_copy(update=update))
        del self._leases[job.job_id]
        if all_done and stored.version == job.version:
            self._outbox.pop(job.job_id, None)
        elif retry_at is not None and not all_done and stored.version == job.version:
            self._outbox[job.job_id] = f"{format_utc(retry_at)}#{job.job_id}"
        else:
            return (all_done or retry_at is not None) and stored.version != job.version
        return False

    # --- small records ----------------------------------------------------------------------

    @_atomic
    def put_record(
        self,
        kind: str,
        key: str,
        attributes: dict[str, Any],
        *,
        only_if: dict[str, Any] | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        address = (str(kind), key)
        stored = self._records.get(address)
        if only_if_absent and stored is not None:
            return False
        if not only_if_absent and only_if and (
            stored is None or any(stored.get(name) != _normalized(value) for name, value in only_if.items())
        ):
            return False
        self._records[address] = _normalized(attributes)
        return True

    @_atomic
    def set_record_entry(self, kind: str, key: str, map_attribute: str, entry: str, value: Any | None) -> None:
        record = self._records.setdefault((str(kind), key), {})
        entries = record.setdefault(map_attribute, {})
        if value is None:
            entries.pop(entry, None)
        else:
            entries[entry] = _normalized(value)

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        record = self._records.get((str(kind), key))
        return _normalized(record) if record is not None else None

    def delete_record(self, kind: str, key: str) -> None:
        self._records.pop((str(kind), key), None)

    @_atomic
    def add_usage(self, key: str, attempt: str, seconds: int, *, release: tuple[str, str, int] | None = None) -> bool:
        mark = (RecordKind.COUNTED.value, attempt)
        if mark in self._records:
            if release is not None:
                self._release(*release)
            return False
        self._records[mark] = {"UsageKey": key}
        record = self._records.setdefault((RecordKind.USAGE.value, key), {"Seconds": 0})
        record["Seconds"] = record.get("Seconds", 0) + int(seconds)
        record["Committed"] = record.get("Committed", 0) + int(seconds)
        if release is not None:
            self._release(*release)
        return True

    @_atomic
    def reserve(self, key: str, tokens: Sequence[str], seconds: int, limit: int | None) -> bool:
        if not tokens:
            return True
        if limit is not None and seconds > limit:
            return False
        record = self._records.get((RecordKind.USAGE.value, key), {})
        if tokens[0] in record.get("Holding", ()):
            return True
        if limit is not None and "Committed" in record and record["Committed"] > limit - int(seconds):
            return False
        record = self._records.setdefault((RecordKind.USAGE.value, key), record)
        record["Reserved"] = record.get("Reserved", 0) + int(seconds)
        record["Committed"] = record.get("Committed", 0) + int(seconds)
        record["Holding"] = sorted({*record.get("Holding", ()), *tokens})
        return True

    @_atomic
    def release(self, key: str, token: str, seconds: int) -> bool:
        return self._release(key, token, seconds)

    def _release(self, key: str, token: str, seconds: int) -> bool:
        record = self._records.get((RecordKind.USAGE.value, key))
        if record is None or token not in record.get("Holding", ()):
            return False
        record["Reserved"] -= int(seconds)
        record["Committed"] -= int(seconds)
        record["Holding"] = [t for t in record["Holding"] if t != token]
        if not record["Holding"]:
            del record["Holding"]  # DynamoDB drops an emptied set
        return True

    @_atomic
    def count_sweep_end(self, sweep_id: str, member: int, outcome: str, failure: str | None = None) -> SweepEnd | None:
        record = self._records.setdefault((RecordKind.SWEEP_ENDS.value, sweep_id), {"Tally": {}})
        counted = record.setdefault("Counted", [])
        if member in counted:
            return None
        counted.append(member)
        tally = record["Tally"]
        tally[outcome] = tally.get(outcome, 0) + 1
        if failure is not None:
            record.setdefault("Failures", []).append(failure[:160])
        ended = SweepEnd(
            tally=dict(tally),
            failures=list(record.get("Failures", [])),
            digested=int(record.get("Digested", 0)),
            final=int(record.get("Final", 0)) == 1,
            failures_before=int(record.get("FailuresBefore", 0)),
        )
        if len(ended.failures) > 2 * notice.SWEEP_FAILURES_KEPT:
            # Only the newest are kept; the dropped ones are counted (as DynamoJobStore does).
            drop = len(ended.failures) - notice.SWEEP_FAILURES_KEPT
            record["Failures"] = record["Failures"][drop:]
            record["FailuresBefore"] = ended.failures_before + drop
        return ended

    @_atomic
    def claim_record_mark(self, kind: str, key: str, attribute: str, expected: int, new: int, *, expires_at: int | None = None) -> bool:
        record = self._records.get((str(kind), key))
        if int((record or {}).get(attribute, 0)) != expected:
            return False
        record = self._records.setdefault((str(kind), key), {})
        record[attribute] = new
        if expires_at is not None:
            record["ExpiresAt"] = expires_at
        return True

    @_atomic
    def claim_sweep_mark(self, sweep_id: str, attribute: str, expected: int, new: int) -> bool:
        record = self._records.get((RecordKind.SWEEP_ENDS.value, sweep_id))
        if record is None or int(record.get(attribute, 0)) != expected:
            return False
        record[attribute] = new
        return True
