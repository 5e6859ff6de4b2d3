"""Job history as rows for a notebook: ``trainbot export --since … --format csv|jsonl``.

One flat row per job created in the window, streamed: jobs are read day by day through the
``ByDay`` index (:func:`backend.services.stats.jobs_in_window`) and written as they arrive, so
an export of months of history never holds it all in memory and never Scans the table.
Durations are seconds, times ISO-8601 UTC, empty when unknown.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from backend.domain.times import format_utc
from backend.ports import JobHistory
from backend.services.stats import Window, instance_hours, jobs_in_window, queue_wait, retries, run_time

if TYPE_CHECKING:
    from backend.domain.model import Job

FORMATS = ("csv", "jsonl")
FIELDS = (
    "job_id",
    "name",
    "team_id",
    "user_id",
    "status",
    "preset",
    "sweep_id",
    "instance_type",
    "instance_count",
    "spot",
    "priority",
    "created_at",
    "first_launched_at",
    "ended_at",
    "queue_wait_seconds",
    "run_seconds",
    "attempts",
    "retries",
    "retry_causes",
    "billable_seconds",
    "instance_hours",
    "last_failure_class",
    "last_reason",
    "image",
    "output",
)


def _time(value: datetime | None) -> str | None:
    return format_utc(value) if value is not None else None


def row(job: Job) -> dict[str, Any]:
    """The flat record of one job (keys: :data:`FIELDS`)."""
    args = job.job_args
    launched = next((a.launched_at for a in job.attempts if a.launched_at is not None), None)
    runs = [r for r in (run_time(a) for a in job.attempts) if r is not None]
    billable = [a.billable_seconds for a in job.attempts if a.billable_seconds is not None]
    causes = Counter(cause for cause, _ in retries(job))
    last = job.current_attempt
    return {
        "job_id": job.job_id,
        "name": job.name,
        "team_id": job.owner.team_id,
        "user_id": job.owner.user_id,
        "status": job.status.value,
        "preset": job.preset,
        "sweep_id": job.sweep_id,
        "instance_type": args.instance_type,
        "instance_count": args.instance_count,
        "spot": args.EnableManagedSpotTraining,
        "priority": job.priority,
        "created_at": _time(job.created_at),
        "first_launched_at": _time(launched),
        "ended_at": _time(job.history[-1].at) if job.is_terminal and job.history else None,
        "queue_wait_seconds": queue_wait(job),
        "run_seconds": sum(runs) if runs else None,
        "attempts": len(job.attempts),
        "retries": sum(causes.values()),
        "retry_causes": ";".join(f"{c}:{n}" for c, n in sorted(causes.items())),
        "billable_seconds": sum(billable) if billable else None,
        "instance_hours": sum(instance_hours(job, a) for a in job.attempts) if billable else None,
        "last_failure_class": last.failure_class.value if last and last.failure_class else None,
        "last_reason": job.history[-1].reason if job.history else "",
        "image": args.AlgorithmSpecification.TrainingImage,
        "output": args.OutputDataConfig.S3OutputPath,
    }


def rows(jobs: Iterable[Job]) -> Iterator[dict[str, Any]]:
    return (row(job) for job in jobs)


def write(jobs: Iterable[Job], out: TextIO, fmt: str) -> int:
    """Write one row per job to ``out`` as ``csv`` (with a header) or ``jsonl``; the count."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        for record in rows(jobs):
            writer.writerow({k: "" if v is None else v for k, v in record.items()})
            count += 1
    else:
        for record in rows(jobs):
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def export(store: JobHistory, since: datetime, until: datetime, out: TextIO, fmt: str) -> int:
    """Stream the jobs created in ``[since, until]`` to ``out``; the number of rows written."""
    return write(jobs_in_window(store, Window(since, until)), out, fmt)
