"""Generated job histories with known statistics, for the stats, chart and export tests.

:func:`known_history` builds six jobs in a 7-day window (and one older job outside it) whose
every statistic is worked out by hand in :data:`EXPECTED`; :func:`job_with` builds one job
from a compact description of its attempts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from backend.adapters.dynamo import to_item
from backend.domain.history import HistoryEntry
from backend.domain.model import Attempt, AttemptOutcome, FailureClass, Job, attempt_name
from backend.domain.status import JobStatus
from tests.conftest import T0, job_args, make_job

S = JobStatus
F = FailureClass
O = AttemptOutcome  # noqa: E741 - short on purpose, read as "outcome"
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = T0  # 2026-11-02 09:00 UTC
BASE = NOW - 3 * DAY  # 2026-10-30 09:00


def seed(dynamodb, table: str, jobs) -> None:
    """Write jobs as stored items (index keys included), 25 per BatchWriteItem."""
    jobs = list(jobs)
    for start in range(0, len(jobs), 25):
        chunk = jobs[start : start + 25]
        dynamodb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": to_item(j)}} for j in chunk]})


def attempt(
    job_id: str,
    number: int,
    claimed: datetime,
    *,
    launched: datetime | None = None,
    started: datetime | None = None,
    ended: datetime | None = None,
    outcome: AttemptOutcome = O.COMPLETED,
    failure: FailureClass | None = None,
    billable: int | None = None,
) -> Attempt:
    return Attempt(
        number=number,
        name=attempt_name(job_id, number),
        claimed_at=claimed,
        launched_at=launched,
        started_at=started,
        ended_at=ended,
        outcome=outcome,
        failure_class=failure,
        billable_seconds=billable,
    )


def job_with(
    name: str,
    created: datetime,
    status: JobStatus,
    attempts: list[dict],
    *,
    instance: str = "ml.g5.xlarge",
    count: int = 1,
    user: str = "U1",
    team: str = "T1",
    preset: str | None = None,
    history: list[tuple[JobStatus, JobStatus, datetime]] = (),
    job_id: str | None = None,
) -> Job:
    """A job in ``status`` with ``attempts`` (keyword dicts for :func:`attempt`, numbered in
    order) and the extra ``history`` moves given as (from, to, at)."""
    args = job_args(ResourceConfig={"InstanceType": instance, "InstanceCount": count, "VolumeSizeInGB": 50})
    job = make_job(name, user=user, team=team, now=created, job_args=args, preset=preset, job_id=job_id)
    built = [attempt(job.job_id, i + 1, **spec) for i, spec in enumerate(attempts)]
    entries = list(job.history)
    for from_status, to_status, at in history:
        entries.append(HistoryEntry(seq=len(entries) + 1, at=at, from_status=from_status, to_status=to_status))
    last = max([created, *(e.at for e in entries), *(a.ended_at or a.claimed_at for a in built)])
    if not history and status is not S.NEW:
        entries.append(HistoryEntry(seq=len(entries) + 1, at=last, from_status=S.NEW, to_status=status))
    return job.model_copy(update={"status": status, "attempts": built, "history": entries, "updated_at": last})


def known_history(now: datetime = NOW) -> list[Job]:
    """Six jobs in the last 7 days before ``now`` and one 10 days old (see EXPECTED)."""
    base = now - 3 * DAY
    a = job_with(
        "a", base, S.COMPLETED,
        [dict(claimed=base + 9 * MIN, launched=base + 10 * MIN, started=base + 12 * MIN, ended=base + 72 * MIN, billable=3600)],
    )
    b_created = base + HOUR
    b = job_with(
        "b", b_created, S.COMPLETED,
        [
            dict(claimed=b_created + MIN, ended=b_created + MIN, outcome=O.NOT_STARTED, failure=F.CAPACITY),
            dict(claimed=b_created + 30 * MIN, launched=b_created + 31 * MIN, started=b_created + 35 * MIN,
                 ended=b_created + 65 * MIN, billable=1800),
        ],
        count=2,
    )
    c_created = base + DAY
    c = job_with(
        "c", c_created, S.FAILED,
        [
            dict(claimed=c_created + 59 * MIN, launched=c_created + HOUR, started=c_created + 65 * MIN,
                 ended=c_created + 75 * MIN, outcome=O.FAILED, failure=F.ALGORITHM, billable=600),
            dict(claimed=c_created + 2 * HOUR, launched=c_created + 2 * HOUR, started=c_created + 125 * MIN,
                 ended=c_created + 135 * MIN, outcome=O.FAILED, failure=F.ALGORITHM, billable=600),
        ],
        instance="ml.p4d.24xlarge",
    )
    d_created = base + 2 * DAY
    d = job_with(
        "d", d_created, S.IN_PROGRESS,
        [
            dict(claimed=d_created, launched=d_created + timedelta(seconds=30), started=d_created + MIN,
                 ended=d_created + 6 * MIN, outcome=O.STOPPED, failure=F.STOPPED, billable=300),
            dict(claimed=d_created + 20 * MIN, launched=d_created + 21 * MIN, started=d_created + 22 * MIN,
                 outcome=O.RUNNING),
        ],
        instance="ml.m5.large",
        history=[
            (S.NEW, S.LAUNCHED, d_created + timedelta(seconds=30)),
            (S.LAUNCHED, S.IN_PROGRESS, d_created + MIN),
            (S.IN_PROGRESS, S.STOPPING, d_created + 5 * MIN),
            (S.STOPPING, S.STOPPED, d_created + 6 * MIN),
            (S.STOPPED, S.RETRYING, d_created + 10 * MIN),  # the user asked: a manual retry
            (S.RETRYING, S.LAUNCHED, d_created + 21 * MIN),
            (S.LAUNCHED, S.IN_PROGRESS, d_created + 22 * MIN),
        ],
    )
    f_created = base + 2 * DAY + HOUR
    f = job_with(
        "f", f_created, S.RETRYING,
        [
            dict(claimed=f_created + MIN, ended=f_created + MIN, outcome=O.NOT_STARTED, failure=F.QUOTA),
            dict(claimed=f_created + 119 * MIN, launched=f_created + 2 * HOUR, started=f_created + 125 * MIN,
                 ended=f_created + 135 * MIN, outcome=O.FAILED, failure=F.THROTTLING, billable=600),
        ],
        instance="ml.g5.2xlarge",
    )
    e = job_with("e", now - HOUR, S.NEW, [])
    old = job_with(
        "old", now - 10 * DAY, S.COMPLETED,
        [dict(claimed=now - 10 * DAY, launched=now - 10 * DAY, started=now - 10 * DAY, ended=now - 10 * DAY + HOUR, billable=3600)],
    )
    return [a, b, c, d, e, f, old]


# Worked out by hand from known_history (window: the 7 days before NOW).
EXPECTED = {
    "total": 6,
    "by_status": {"Completed": 2, "Failed": 1, "Stopped": 0, "New": 1, "Retrying": 1, "InProgress": 1},
    "finished": 3,
    "success_rate": 2 / 3,
    "retries": {"capacity": 1, "quota": 1, "algorithm": 1, "throttling": 1, "manual": 1},
    # waits: a 600, b 1860, c 3600, d 30, f 7200 (e never launched)
    "queue_wait": (5, 1860.0, 3600 + 0.6 * 3600),
    # runs: a 3600, b 1800, c 600 + 600, d 300 (its second attempt still runs), f 600
    "run_time": (6, 600.0, 1800 + 0.5 * 1800),
    "instance_hours": {"ml.g5.xlarge": 2.0, "ml.p4d.24xlarge": 1200 / 3600, "ml.g5.2xlarge": 600 / 3600, "ml.m5.large": 300 / 3600},
    "slowest": [("ml.g5.2xlarge", 7200.0, 1), ("ml.p4d.24xlarge", 3600.0, 1), ("ml.g5.xlarge", 1230.0, 2), ("ml.m5.large", 30.0, 1)],
    "days": ["2026-10-26", "2026-10-27", "2026-10-28", "2026-10-29", "2026-10-30", "2026-10-31", "2026-11-01", "2026-11-02"],
    "jobs": {
        "Completed": [0, 0, 0, 0, 2, 0, 0, 0],
        "Failed": [0, 0, 0, 0, 0, 1, 0, 0],
        "Stopped": [0, 0, 0, 0, 0, 0, 0, 0],
        "Unfinished": [0, 0, 0, 0, 0, 0, 2, 1],
    },
    "retries_per_day": {
        "capacity": [0, 0, 0, 0, 1, 0, 0, 0],
        "quota": [0, 0, 0, 0, 0, 0, 1, 0],
        "algorithm": [0, 0, 0, 0, 0, 1, 0, 0],
        "throttling": [0, 0, 0, 0, 0, 0, 1, 0],
        "manual": [0, 0, 0, 0, 0, 0, 1, 0],
    },
}
