"""A sweep's job ids, derived from the sweep's id and each job's place in it (issue 23).

A sweep's batch record (``sweep#<sweep id>``) keeps the ids' common stem and the sweep's size,
never the ids themselves: a 10,000-job sweep's record is a few hundred bytes, not 200 KB (half
of DynamoDB's item limit). Job ``index`` (from 0, as in its client token ``<sweep id>/<index>``)
of a sweep is ``<stem>-<index + 1>``, the number its name carries (``<name>-0042``), and the
stem is ``<prefix><slug of the sweep's name>-<tag>``, the tag ten base-36 characters of the
sweep id's SHA-256 (52 bits: two sweeps of one name share a stem with odds of about 1 in 4.5e15).

The ids keep every job-id rule: the deployment's prefix first, at most JOB_ID_MAX characters,
letters, digits and dashes. They end in ``-<number>``, never ``-a<number>``, so ``<JobId>-a<n>``
still names exactly one attempt of exactly one job, and never in six characters, so no sweep
job id is ever a single job's id (``<slug>-<6 characters>``), nor a sweep's (``sw-<16 hex>``).
Records written before this (``JobIds``: every id) are still read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from backend.domain.terms import JOB_ID_MAX, JOB_ID_PREFIX, base36, slug_of

TAG_LEN = 10
MAX_SWEEP_JOBS = 99_999  # the number's five digits, always below the six of a single job's suffix
_NAME_MAX = JOB_ID_MAX - 1 - TAG_LEN - 1 - len(str(MAX_SWEEP_JOBS))


def sweep_stem(sweep_id: str, name: str, prefix: str = "") -> str:
    """What every job id of sweep ``sweep_id`` (named ``name``) starts with."""
    if not JOB_ID_PREFIX.match(prefix):
        raise ValueError(f"job id prefix {prefix!r} must be up to 12 lowercase letters, digits or dashes, not starting with a dash")
    tag = base36(int(hashlib.sha256(sweep_id.encode()).hexdigest(), 16), TAG_LEN)
    return f"{prefix}{slug_of(name, _NAME_MAX - len(prefix))}-{tag}"


def sweep_job_id(stem: str, index: int) -> str:
    """The id of job ``index`` (from 0) of the sweep whose ids start with ``stem``."""
    if not 0 <= index < MAX_SWEEP_JOBS:
        raise ValueError(f"a sweep holds at most {MAX_SWEEP_JOBS:,} jobs, not job {index + 1:,}")
    return f"{stem}-{index + 1}"


def stem_of(job_ids: Sequence[str]) -> str | None:
    """The stem ``job_ids`` were derived from (the i-th is ``<stem>-<i + 1>``); None when they
    were not (ids a test or an older version chose: the record then keeps them)."""
    if not job_ids or not job_ids[0].endswith("-1"):
        return None
    stem = job_ids[0][: -len("-1")]
    if len(job_ids) > MAX_SWEEP_JOBS or any(job_id != f"{stem}-{i + 1}" for i, job_id in enumerate(job_ids)):
        return None
    return stem


def batch_record_ids(job_ids: Sequence[str]) -> dict[str, Any]:
    """How a batch record names its jobs: ``IdStem`` and ``Size`` when the ids are derived,
    else every id (``JobIds``)."""
    stem = stem_of(job_ids)
    if stem is not None:
        return {"IdStem": stem, "Size": len(job_ids)}
    return {"JobIds": list(job_ids)}


def batch_job_ids(record: Mapping[str, Any]) -> list[str]:
    """The job ids of a sweep's batch record, in order (either form)."""
    if record.get("IdStem"):
        return [sweep_job_id(str(record["IdStem"]), i) for i in range(int(record.get("Size", 0)))]
    return [str(i) for i in record.get("JobIds") or []]


def batch_size(record: Mapping[str, Any]) -> int:
    """How many jobs a sweep's batch record holds, without listing them."""
    if record.get("IdStem"):
        return int(record.get("Size", 0))
    return len(record.get("JobIds") or [])
