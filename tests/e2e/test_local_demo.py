"""`trainbot local --demo` (its short variant) runs the whole stack and its verdict is checked
from the data: the jobs table it leaves in ``--data DIR``, read back here, not its printed text."""

from __future__ import annotations

import io
import json
from collections import Counter

from backend.adapters.dynamo import from_item
from backend.domain.model import AttemptOutcome, FailureClass
from backend.domain.status import JobStatus
from backend.entrypoints.cli import main
from infra.local.demo import DemoResult, _judge, scripted_jobs
from tests.conftest import make_job

S = JobStatus


def _jobs_in(snapshot) -> dict:
    """The jobs in a snapshot (DynamoDB JSON, one item a line, as a scan returns them)."""
    jobs = {}
    for line in snapshot.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item.get("RecordType", {}).get("S", "job") != "job":
            continue
        job = from_item(item)
        jobs[job.name] = job
    return jobs


def test_the_fast_demo_exits_0_and_the_table_it_leaves_shows_every_scripted_end(tmp_path):
    out = io.StringIO()
    code = main(["local", "--demo", "--fast", "--data", str(tmp_path)], out=out)

    assert code == 0, out.getvalue()[-3000:]
    jobs = _jobs_in(tmp_path / "jobs.jsonl")
    finals = {name: job.status for name, job in jobs.items()}
    assert finals["demo-ok"] is S.COMPLETED
    assert finals["demo-broken"] is S.FAILED
    assert finals["demo-stopped"] is S.STOPPED
    assert [finals[f"demo-sweep-{i}"] for i in (1, 2, 3)] == [S.COMPLETED] * 3
    capacity = jobs["demo-capacity"]
    assert capacity.status is S.COMPLETED
    assert [a.failure_class for a in capacity.attempts] == [FailureClass.CAPACITY, FailureClass.CAPACITY, None]
    flaky = jobs["demo-flaky"]
    assert flaky.status is S.COMPLETED and flaky.algorithm_failures == 1
    # The two jobs on the one ml.p5.48xlarge the stand-in allows: whether the second was refused
    # at create (a free quota retry) or held back until the type had room, both completed and
    # their runs never overlapped; any refusal was a quota one, never spending a retry.
    quota = [jobs["demo-quota-1"], jobs["demo-quota-2"]]
    assert all(j.status is S.COMPLETED for j in quota)
    runs = sorted((a.started_at, a.ended_at) for j in quota for a in j.attempts if a.outcome is AttemptOutcome.COMPLETED)
    assert len(runs) == 2 and all(runs) and runs[0][1] <= runs[1][0], runs
    refused = Counter(a.failure_class for j in quota for a in j.attempts if a.outcome is AttemptOutcome.NOT_STARTED)
    assert set(refused) <= {FailureClass.QUOTA}, refused
    # Every status change went through the status machine's history, in order.
    for job in jobs.values():
        assert [h.seq for h in job.history] == list(range(1, len(job.history) + 1))


def test_the_demo_verdict_fails_when_a_job_ends_otherwise_or_is_missing():
    jobs, sweep, size = scripted_jobs(fast=True)
    wrong = [make_job(name=j.name) for j in jobs]  # every job still New
    result = DemoResult()
    _judge(result, wrong, jobs, sweep, size)

    assert not result.ok
    assert result.missing == [f"demo-sweep-{i}" for i in (1, 2, 3)]
    assert all(not j.ok and "expected" in j.why for j in result.jobs)
