"""Stats rollups: what one finished job adds to ``/train stats``, as counters that add up.

``/train stats`` at 100,000 jobs a day cannot read the jobs of its window (14 days is 1.4
million items). :mod:`backend.services.rollup` keeps, per creation hour, a *tally*: the sum of
the contributions of the jobs created in that hour that have finished, written as they finish;
the stats then read 24 tallies a day instead of every job (:func:`backend.services.stats.collect`).

A tally is a flat map of named counters, so tallies add and subtract entry by entry:

- ``s|<status>``: finished jobs by final status (Completed, Failed, Stopped);
- ``w|<bucket>``: queue waits (creation to first launch), a histogram; ``t|<type>|<bucket>`` the
  same by the instance type the job started on (slowest to start);
- ``r|<bucket>``: attempt run times, a histogram;
- ``h|<user>|<type>|<day>``: billable instance-hours by owner, instance type and the day the
  attempt ended (spend by user, team and type; hours per day). A stored tally keeps them as
  ``d|<type>|<day>`` and ``u|<user>|<type>``, the latter of everyone's in spend shards
  (:func:`backend.services.rollup.split`), so no tally grows with the number of owners;
- ``p|<plan>``: instance-hours on each training plan;
- ``x|<cause>|<day>``: retries by cause and the day the retried attempt ended;
- ``c``: jobs created (the roller counts them once their hour is over).

Histograms have fixed buckets 5% wide (``BUCKET_RATIO``): a median or p90 read from one is
within 2.5% of the exact one (the bucket's geometric middle stands for its values). Counts,
hours and retries are exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from backend.domain.status import TERMINAL, JobStatus
from backend.domain.times import format_utc

if TYPE_CHECKING:
    from datetime import datetime

    from backend.domain.model import Attempt, Job

Tally = dict[str, float]

BUCKET_RATIO = 1.05
_LOG_RATIO = math.log(BUCKET_RATIO)
CREATED = "c"


def bucket(seconds: float) -> int:
    """The histogram bucket of a duration: 0 below a second, then one per 5% of growth."""
    if seconds < 1:
        return 0
    return 1 + int(math.log(seconds) / _LOG_RATIO)


def bucket_value(index: int) -> float:
    """The duration that stands for a bucket's values (its geometric middle; 0 for bucket 0)."""
    if index <= 0:
        return 0.0
    return math.exp((index - 0.5) * _LOG_RATIO)


def add(into: Tally, other: Mapping[str, float], sign: int = 1) -> Tally:
    """``into`` += ``sign`` x ``other``, entry by entry; entries that reach zero are dropped."""
    for key, value in other.items():
        total = into.get(key, 0) + sign * value
        if abs(total) < 1e-9:
            into.pop(key, None)
        else:
            into[key] = total
    return into


def _histogram_of(key: str) -> tuple[str, int] | None:
    """(histogram, bucket) of a histogram entry (``w|12`` -> ``("w", 12)``, ``t|<type>|12`` ->
    ``("t|<type>", 12)``); None for any other entry."""
    name, _, rest = key.rpartition("|")
    if rest.isdigit() and (name in ("w", "r") or name.startswith("t|")):
        return name, int(rest)
    return None


def pack(tally: Mapping[str, float]) -> dict[str, Any]:
    """``tally`` as a record stores it: each histogram one string of ``bucket:count`` pairs
    (``Hist``), the other entries as they are (``Tally``). A tally is rewritten whole at every
    roll, and DynamoDB charges a write by the item's size: this is 2-3 times smaller than an
    attribute per bucket (bench/scale.py)."""
    flat: dict[str, float] = {}
    grouped: dict[str, list[tuple[int, int]]] = {}
    for key, value in tally.items():
        found = _histogram_of(key)
        if found is not None and float(value).is_integer():
            grouped.setdefault(found[0], []).append((found[1], int(value)))
        else:
            flat[key] = value
    hist = {name: ",".join(f"{b}:{c}" for b, c in sorted(pairs)) for name, pairs in grouped.items()}
    return {"Tally": flat, **({"Hist": hist} if hist else {})}


def unpack(record: Mapping[str, Any]) -> Tally:
    """The tally a record written by :func:`pack` holds (a record without ``Hist`` too)."""
    out: Tally = {key: float(value) for key, value in (record.get("Tally") or {}).items()}
    for name, text in (record.get("Hist") or {}).items():
        for pair in str(text).split(","):
            if pair:
                bucket_, _, count = pair.partition(":")
                key = f"{name}|{bucket_}"
                out[key] = out.get(key, 0) + int(count)
    return out


def total(tallies: Iterable[Mapping[str, float]]) -> Tally:
    out: Tally = {}
    for tally in tallies:
        add(out, tally)
    return out


def histogram(tally: Mapping[str, float], prefix: str) -> dict[int, int]:
    """The histogram under ``prefix`` (``w|``, ``r|``, ``t|<type>|``): bucket -> count."""
    out: dict[int, int] = {}
    for key, value in tally.items():
        if key.startswith(prefix):
            rest = key[len(prefix):]
            if rest.isdigit() and value:
                out[int(rest)] = out.get(int(rest), 0) + int(round(value))
    return out


def percentile(hist: Mapping[int, int], q: float) -> float | None:
    """The ``q``-th percentile of a histogram, linear between the closest ranks as
    :func:`backend.services.stats.percentile` is (each value read as its bucket's middle)."""
    count = sum(n for n in hist.values() if n > 0)
    if not count:
        return None
    rank = (count - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    ordered = sorted((b, n) for b, n in hist.items() if n > 0)

    def nth(i: int) -> float:
        seen = 0
        for index, n in ordered:
            seen += n
            if i < seen:
                return bucket_value(index)
        return bucket_value(ordered[-1][0])

    lo, hi = nth(low), nth(high)
    return lo + (hi - lo) * (rank - low)


def _duration_entry(into: Tally, key: str) -> None:
    into[key] = into.get(key, 0) + 1


# --- what one job's history says (also the stats read one by one: backend.services.stats) ---


def queue_wait(job: Job) -> float | None:
    """Seconds from creation to the launch of the first attempt SageMaker accepted."""
    for attempt in job.attempts:
        if attempt.launched_at is not None:
            return max(0.0, (attempt.launched_at - job.created_at).total_seconds())
        if attempt.started_at is not None:  # ran, but its launch time was never recorded
            return max(0.0, (attempt.claimed_at - job.created_at).total_seconds())
    return None


def run_time(attempt: Attempt) -> float | None:
    if attempt.started_at is None or attempt.ended_at is None:
        return None
    return max(0.0, (attempt.ended_at - attempt.started_at).total_seconds())


def instance_hours(job: Job, attempt: Attempt) -> float:
    return (attempt.billable_seconds or 0) * job.job_args.instance_count / 3600


def _ended(attempt: Attempt) -> bool:
    from backend.domain.model import AttemptOutcome

    return attempt.ended_at is not None or attempt.outcome in (AttemptOutcome.FAILED, AttemptOutcome.NOT_STARTED)


def retries(job: Job) -> list[tuple[str, datetime]]:
    """``(cause, when)`` for each retry of ``job``: every attempt followed by another (or, for a
    job in Retrying now, its last ended attempt), caused by that attempt's failure class, or
    ``manual`` when its owner asked for it after the job had failed or stopped; dated by when
    the attempt it repeats ended."""
    S = JobStatus
    manual_after = [h.at for h in job.history if h.to_status is S.RETRYING and h.from_status in (S.FAILED, S.STOPPED)]
    out: list[tuple[str, datetime]] = []
    for index, attempt in enumerate(job.attempts):
        followed = index + 1 < len(job.attempts)
        if not followed and not (job.status is S.RETRYING and _ended(attempt)):
            continue
        when = attempt.ended_at or attempt.claimed_at
        next_claim = job.attempts[index + 1].claimed_at if followed else None
        asked = any(when <= at and (next_claim is None or at <= next_claim) for at in manual_after)
        cause = "manual" if asked else (attempt.failure_class.value if attempt.failure_class else "unknown")
        out.append((cause, when))
    return out


def contribution(job: Job) -> Tally:
    """What ``job``, finished, adds to the tally of its creation hour (empty when it is not
    finished: an unfinished job is counted by the creations, not here)."""
    if job.status not in TERMINAL:
        return {}
    out: Tally = {f"s|{job.status.value}": 1}
    wait = queue_wait(job)
    if wait is not None:
        _duration_entry(out, f"w|{bucket(wait)}")
        kind = job.instance_type_of(job.attempts[0] if job.attempts else None)
        _duration_entry(out, f"t|{kind}|{bucket(wait)}")
    for attempt in job.attempts:
        ran = run_time(attempt)
        if ran is not None:
            _duration_entry(out, f"r|{bucket(ran)}")
        if attempt.billable_seconds:
            hours = instance_hours(job, attempt)
            day = format_utc(attempt.ended_at)[:10] if attempt.ended_at is not None else ""
            key = f"h|{job.owner.user_id}|{job.instance_type_of(attempt)}|{day}"
            out[key] = out.get(key, 0) + hours
            if attempt.plan:
                out[f"p|{attempt.plan}"] = out.get(f"p|{attempt.plan}", 0) + hours
    for cause, when in retries(job):
        key = f"x|{cause}|{format_utc(when)[:10]}"
        out[key] = out.get(key, 0) + 1
    return out


def previous_end(job: Job) -> int | None:
    """The index in ``job.history`` of the end before its last one (a finished job its owner
    retried and that finished again); None when it has ended at most once."""
    ends = [i for i, entry in enumerate(job.history) if entry.to_status in TERMINAL]
    if job.status in TERMINAL:
        ends = ends[:-1]
    return ends[-1] if ends else None


def as_of(job: Job, end: int) -> Job:
    """``job`` as it was when it reached the end ``job.history[end]``: the attempts claimed by
    then, its history up to it and that end's status."""
    at = job.history[end].at
    return job.model_copy(
        update={
            "status": JobStatus(job.history[end].to_status),
            "history": job.history[: end + 1],
            "attempts": [a for a in job.attempts if a.claimed_at <= at],
        }
    )


def retried_at(job: Job, end: int) -> str | None:
    """When the owner retried the end ``job.history[end]`` (the next entry), as stored text."""
    if end + 1 < len(job.history):
        return format_utc(job.history[end + 1].at)
    return None


def end_slice(at_text: str) -> str:
    """The ten-minute slice a moment falls in (``2026-12-07T18:2``): how ends are rolled up."""
    return at_text[:15]


def hour_of(at_text: str) -> str:
    """The creation hour a tally covers (``2026-12-07T18``)."""
    return at_text[:13]
