"""The item codec: a Job <-> its DynamoDB item (attribute values in DynamoDB JSON), the GSI
keys a job carries in each state, and the opaque page cursors the store hands out.

The sparse GSIs declared in `template.yaml` serve the hot paths, so no query reads more than
it returns:

- ``Queue``: ``ready`` New jobs by priority then fair-share tag; ``waiting`` Retrying jobs by
  next attempt time; ``claimed`` jobs a launcher holds, by lease expiry.
- ``Active``: Launched / InProgress / Stopping jobs.
- ``Owner``: a user's jobs, newest first.  ``ByDay``: history by creation day.
- ``Outbox``: jobs with a status change some notifier has not delivered, by when it is due.
- ``Ended``: finished jobs by the ten-minute slice they finished in (the stats rollup).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from backend.adapters.dynamo.attributes import deserialize, serialize
from backend.domain import notice
from backend.domain.records import RecordKind
from backend.domain.status import ACTIVE, JobStatus
from backend.domain.tally import end_slice
from backend.domain.times import format_utc, to_utc
from backend.errors import UnreadableItem

if TYPE_CHECKING:
    from backend.domain.model import Job

# (``ActiveUse`` is no key: the one attribute the Active index projects besides its keys.)
GSI_KEYS = ("QueueKey", "QueueSort", "ActiveKey", "ActiveSort", "ActiveUse", "OwnerId", "CreatedDay", "OutboxKey", "OutboxSort", "Ended")
# Written only by the notification dispatcher, never by a job write.
# ``Slack`` is set at registration and then only by set_thread (its root message ts).
WRITER_OWNED = frozenset({"Delivered", "Doubts", "DeliveryLease", "Slack"})
# The Outbox index's keys: a job write sets them from what it read (its change is pending), and
# the dispatcher removes or moves them (delivered, backing off) with no new version.
OUTBOX_KEYS = frozenset({"OutboxKey", "OutboxSort"})


def to_item(job: Job, notify_targets: Sequence[str] = ()) -> dict[str, Any]:
    """The DynamoDB item (attribute values in DynamoDB JSON) for ``job``, with its index keys."""
    plain = json.loads(job.model_dump_json(by_alias=True, exclude_none=True), parse_float=Decimal)
    plain["RecordType"] = RecordKind.JOB.value
    # The model's defaults, which every version reads back as they are, are not stored: a
    # finished happy-path job's item stays under 2 KB (2 WCU a write, not 3).
    if not plain.get("AlgorithmFailures"):
        plain.pop("AlgorithmFailures", None)
    if plain.get("RetryBudget") == 2:
        plain.pop("RetryBudget")
    plain.update(index_keys(job, notify_targets))
    return {key: serialize(value) for key, value in plain.items()}


def index_keys(job: Job, notify_targets: Sequence[str] = ()) -> dict[str, str]:
    """The GSI key attributes ``job`` carries now (absent attributes keep it out of an index)."""
    keys = {
        "OwnerId": job.owner.key,
        "CreatedDay": format_utc(job.created_at)[:10],
    }
    place = queue_place(job)
    if place is not None:
        keys["QueueKey"], keys["QueueSort"] = place
    if job.status in ACTIVE:
        keys["ActiveKey"] = "active"
        # Fixed while it stays active (Job.active_since): an InProgress or bookkeeping write
        # leaves the index entry as it is (no delete and put on the index).
        keys["ActiveSort"] = f"{format_utc(job.active_since)}#{job.job_id}"
        # What it holds while active, "<type>#<instances>" (or "plan:<name>#<instances>" on a
        # training plan): the launcher counts instances in use from the index alone (its
        # INCLUDE projection), never reading whole items.
        keys["ActiveUse"] = f"{job.use_key}#{job.job_args.instance_count}"
    if job.is_terminal and job.history:
        # The ten-minute slice it finished in: the Ended index, which the stats rollup reads
        # (backend.services.rollup). Set once, by the write that ends the job.
        keys["Ended"] = end_slice(format_utc(job.history[-1].at))
    deliver_by = notice.delivery_due(job, notify_targets)
    if deliver_by is not None:
        # Sorted by when the drain may take it (backend.domain.notice): an urgent change once
        # its writer's delivery lease has run out, others once the job has been quiet a while.
        keys["OutboxKey"] = "pending"
        keys["OutboxSort"] = f"{format_utc(deliver_by)}#{job.job_id}"
    return keys


def queue_place(job: Job) -> tuple[str, str] | None:
    """The job's place in the Queue index, (partition, sort key); None when it is not queued."""
    if job.is_held:
        # Waiting for an admin (backend.domain.approval): its own partition, never ``ready``.
        return "held", f"{format_utc(job.created_at)}#{job.job_id}"
    if not job.is_queued:
        return None
    if job.lease is not None:
        return "claimed", f"{format_utc(job.lease.expires_at)}#{job.job_id}"
    if job.parked_at is not None:
        # Set aside by the launcher while its instance type has no room: out of the ready
        # queue, grouped by type, so a blocked type never stands in front of an idle one.
        return "parked", f"{job.park_key}#{ready_sort_key(job)}"
    if job.status is JobStatus.RETRYING:
        due = job.next_attempt_at or job.updated_at
        return "waiting", f"{format_utc(due)}#{job.job_id}"
    return "ready", ready_sort_key(job)


def ready_sort_key(job: Job) -> str:
    """The ready index's sort key: :func:`backend.domain.fairness.launch_order` as a string
    (highest priority first, then the owner-fair tag, then age)."""
    return f"{9 - job.priority}#{job.queue_tag:017.3f}#{format_utc(job.created_at)}#{job.job_id}"


def expires_at(job: Job, retention_days: int) -> int | None:
    """When a finished job may expire (epoch seconds, DynamoDB TTL): ``retention_days`` after
    it reached its terminal status. None while it is not finished, or with retention off (0)."""
    if retention_days <= 0 or not job.is_terminal:
        return None
    ended = job.history[-1].at if job.history else job.updated_at
    return int(to_utc(ended).timestamp()) + retention_days * 86400


def plain(value: Any) -> Any:
    """A deserialized DynamoDB value as plain JSON-like Python (Decimals as int or float)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, set):
        return [plain(v) for v in sorted(value)]
    return value


def from_item(item: dict[str, Any]) -> Job:
    """The Job an item holds (index keys and the dispatcher's lease dropped); UnreadableItem
    when this version cannot decode it (a status or field type a newer version wrote)."""
    try:
        values = {key: plain(deserialize(value)) for key, value in item.items()}
    except (TypeError, ValueError) as exc:
        raise UnreadableItem(str(item.get("JobId", {}).get("S", "?")), str(exc)) from exc
    for key in (*GSI_KEYS, "RecordType", "ExpiresAt", "DeliveryLease"):
        values.pop(key, None)
    from pydantic import ValidationError

    from backend.domain.model import Job  # the first item read builds the model: an idle run reads none

    try:
        return Job.model_validate(values)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise UnreadableItem(str(values.get("JobId", "?")), errors) from exc


def record_key(kind: str, key: str) -> dict[str, Any]:
    """The primary key of a small ``<kind>#<key>`` record."""
    return {"JobId": {"S": f"{kind}#{key}"}}


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def decode_cursor(cursor: str, *, required: str = "JobId") -> dict[str, Any]:
    """A cursor this store handed out (``required`` names the key every such cursor has)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError("that page cursor is not one Trainbot gave out") from exc
    if not isinstance(key, dict) or required not in key:
        raise ValueError("that page cursor is not one Trainbot gave out")
    return key


def epoch(value: datetime) -> float:
    return to_utc(value).timestamp()
