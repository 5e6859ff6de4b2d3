"""A sweep's job ids are derived from its id and each job's place (backend.domain.sweeps), so its
batch record keeps their stem and count instead of every id (issue 23: a 10,000-job sweep)."""

from __future__ import annotations

import re

import pytest

from backend.domain.model import JOB_ID_MAX, JOB_ID_PATTERN, MAX_ATTEMPTS, Job, attempt_name, new_job_id, parse_attempt_name
from backend.domain.sweeps import MAX_SWEEP_JOBS, batch_job_ids, batch_record_ids, batch_size, stem_of, sweep_job_id, sweep_stem
from tests.conftest import make_job

SWEEP = "sw-0123456789abcdef"


def test_a_sweeps_job_ids_are_its_stem_and_each_jobs_number_the_one_its_name_carries():
    stem = sweep_stem(SWEEP, "bert grid", "tb-")
    assert re.fullmatch(r"tb-bert-grid-[0-9a-z]{10}", stem)
    assert [sweep_job_id(stem, i) for i in (0, 41, 9999)] == [f"{stem}-1", f"{stem}-42", f"{stem}-10000"]
    assert sweep_stem(SWEEP, "bert grid", "tb-") == stem  # a redelivery derives the same ids
    assert sweep_stem("sw-fedcba9876543210", "bert grid", "tb-") != stem


def test_every_derived_id_keeps_the_job_id_rules_with_the_longest_prefix_name_and_number():
    stem = sweep_stem(SWEEP, "x" * 200, "team-nlp-abc")
    last = sweep_job_id(stem, MAX_SWEEP_JOBS - 1)
    assert len(last) <= JOB_ID_MAX and JOB_ID_PATTERN.match(last) and last.startswith("team-nlp-abc")
    # Its attempts' names are <JobId>-a<n> and name exactly this job.
    assert parse_attempt_name(attempt_name(last, MAX_ATTEMPTS)) == (last, MAX_ATTEMPTS)
    assert parse_attempt_name(last) is None  # a job id is never read as an attempt's name
    make_job(job_id=last)  # the model accepts it
    with pytest.raises(ValueError):
        sweep_job_id(stem, MAX_SWEEP_JOBS)
    with pytest.raises(ValueError):
        sweep_stem(SWEEP, "grid", "-bad")


def test_a_derived_id_never_has_the_shape_of_a_single_jobs_id_or_a_sweeps():
    single = new_job_id("bert-grid", "trigger-1", prefix="tb-")
    derived = sweep_job_id(sweep_stem(SWEEP, "bert grid", "tb-"), 12345)
    # A single job's id ends in six characters after its last dash, a sweep's id in sixteen.
    assert len(single.rsplit("-", 1)[1]) == 6
    assert 1 <= len(derived.rsplit("-", 1)[1]) <= 5


def test_a_batch_record_names_derived_ids_by_stem_and_size_and_others_one_by_one():
    stem = sweep_stem(SWEEP, "grid")
    ids = [sweep_job_id(stem, i) for i in range(10000)]
    record = batch_record_ids(ids)
    assert record == {"IdStem": stem, "Size": 10000}
    assert batch_job_ids(record) == ids and batch_size(record) == 10000
    assert stem_of(ids[1:]) is None and stem_of(list(reversed(ids))) is None and stem_of([]) is None
    chosen = ["tb-a-123456", "tb-b-654321"]
    assert batch_record_ids(chosen) == {"JobIds": chosen}
    assert batch_job_ids({"JobIds": chosen}) == chosen and batch_size({"JobIds": chosen}) == 2


def test_a_job_built_with_a_derived_id_is_a_valid_job():
    job = make_job("grid-0007", job_id=sweep_job_id(sweep_stem(SWEEP, "grid", "tb-"), 6))
    assert isinstance(job, Job) and job.job_id.endswith("-7")
