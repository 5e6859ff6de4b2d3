"""`trainbot local --demo`: a scripted run of the whole local stack, no browser needed.

A few jobs and a sweep are submitted through the bot exactly as the page submits them (signed
slash commands to the bot's Function URL), each steered by the SageMaker stand-in's
``trainbot_standin_*`` hyperparameters: one completes, one meets CapacityError twice, two
compete for the one ``ml.p5.48xlarge`` the account may run (ResourceLimitExceeded at create),
one has an AlgorithmError it recovers from, one exhausts its retry budget, one is stopped by
its owner. Progress is shown while they run; a summary table ends it.

The verdict is computed from the jobs table (what DynamoDB holds after the run), never from
printed text: :func:`run_demo` returns a :class:`DemoResult` and the exit code is 0 only if
every job ended as scripted.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from backend.domain.model import AttemptOutcome, Job, Owner
from backend.domain.status import JobStatus
from infra.local import TEAM_ID, LocalOptions, LocalStack

DEMO_USER = "U0YOU"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
BASE = f"image={IMAGE} role={ROLE} input=s3://data-bucket/train output=s3://out-bucket/runs max_runtime=1h"
S = JobStatus


@dataclass(frozen=True)
class Scripted:
    """One job of the demo: how it is submitted and how it must end."""

    name: str
    fields: str
    expected: JobStatus
    min_attempts: int = 1
    max_attempts: int | None = None
    stop_when_running: bool = False


@dataclass
class JobOutcome:
    name: str
    job_id: str
    status: str
    expected: str
    attempts: int
    retries: dict[str, int]
    ok: bool
    why: str = ""


@dataclass
class DemoResult:
    jobs: list[JobOutcome] = field(default_factory=list)
    wall_seconds: float = 0.0
    missing: list[str] = field(default_factory=list)
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.jobs) and not self.missing and not self.timed_out and all(j.ok for j in self.jobs)

    @property
    def by_status(self) -> Counter:
        return Counter(j.status for j in self.jobs)

    @property
    def retries_by_cause(self) -> Counter:
        total: Counter = Counter()
        for job in self.jobs:
            total.update(job.retries)
        return total


def scripted_jobs(fast: bool) -> tuple[list[Scripted], Scripted, int]:
    """The demo's jobs, its sweep (a template: one entry per combination) and the sweep size."""
    run = "1.5" if fast else "10"
    long_run = "30" if fast else "120"

    def hp(outcome: str = "", attempts: str = "", duration: str = run) -> str:
        words = [f"hp.trainbot_standin_duration={duration}"]
        if outcome:
            words.append(f"hp.trainbot_standin_outcome={outcome}")
        if attempts:
            words.append(f"hp.trainbot_standin_outcome_attempts={attempts}")
        return " ".join(words)

    jobs = [
        Scripted("demo-ok", f"instance=ml.g5.xlarge {hp()}", S.COMPLETED, 1, 1),
        Scripted("demo-capacity", f"instance=ml.g5.xlarge {hp('CapacityError', '2')}", S.COMPLETED, 3, 3),
        Scripted("demo-quota-1", f"instance=ml.p5.48xlarge {hp()}", S.COMPLETED, 1),
        Scripted("demo-quota-2", f"instance=ml.p5.48xlarge {hp()}", S.COMPLETED, 1),
        Scripted("demo-flaky", f"instance=ml.g5.xlarge retries=2 {hp('AlgorithmError', '1')}", S.COMPLETED, 2, 2),
        Scripted("demo-broken", f"instance=ml.g5.xlarge retries=1 {hp('AlgorithmError', '99')}", S.FAILED, 2, 2),
        Scripted("demo-stopped", f"instance=ml.g5.xlarge {hp(duration=long_run)}", S.STOPPED, 1, 1, stop_when_running=True),
    ]
    sweep = Scripted("demo-sweep", f"instance=ml.g5.xlarge hp.lr=1e-5,3e-5,1e-4 hp.trainbot_standin_duration={run}", S.COMPLETED, 1, 1)
    return jobs, sweep, 3


def demo_options(fast: bool, out: TextIO, data_dir: Path | None = None) -> LocalOptions:
    if fast:
        return LocalOptions(
            port=0, data_dir=data_dir, chaos=0.0, launcher_every=0.5, monitor_every=2.0, events_every=0.2,
            startup_seconds=0.5, run_seconds=1.5, stop_seconds=0.5, retry_base_seconds=1.0, retry_max_seconds=3.0,
            capacity={"ml.p5.48xlarge": 1}, seed=7, log_transitions=False, write_connection_file=False, out=out,
        )
    return LocalOptions(
        port=0, data_dir=data_dir, chaos=0.0, launcher_every=2.0, monitor_every=5.0, startup_seconds=2.0,
        run_seconds=10.0, stop_seconds=2.0, retry_base_seconds=2.0, retry_max_seconds=10.0,
        capacity={"ml.p5.48xlarge": 1}, seed=7, log_transitions=False, write_connection_file=False, out=out,
    )


def run_demo(*, fast: bool = False, out: TextIO | None = None, data_dir: Path | None = None, timeout: float | None = None) -> DemoResult:
    out = out or sys.stdout
    timeout = timeout or (60.0 if fast else 300.0)
    jobs, sweep, sweep_size = scripted_jobs(fast)
    started = time.monotonic()
    result = DemoResult()
    with LocalStack(demo_options(fast, out, data_dir)) as stack:
        print(f"Trainbot demo{' (fast)' if fast else ''}: {len(jobs)} jobs and a {sweep_size}-job sweep, submitted through the bot", file=out)
        for job in jobs:
            _command(stack, f"submit name={job.name} {BASE} {job.fields}", out)
        _command(stack, f"sweep name={sweep.name} {BASE} {sweep.fields}", out)
        expected_total = len(jobs) + sweep_size
        to_stop = {j.name for j in jobs if j.stop_when_running}
        deadline = time.monotonic() + timeout
        last_line = ""
        while True:
            current = _demo_jobs(stack)
            for seen in current:
                if seen.name in to_stop and seen.status is S.IN_PROGRESS:
                    _command(stack, f"stop {seen.job_id}", out)
                    to_stop.discard(seen.name)
            line = _progress_line(current, expected_total, time.monotonic() - started)
            if line != last_line:
                print(line, file=out, flush=True)
                last_line = line
            if len(current) >= expected_total and all(j.is_terminal for j in current):
                break
            if time.monotonic() > deadline:
                result.timed_out = True
                break
            time.sleep(0.5 if fast else 1.0)
        result.wall_seconds = time.monotonic() - started
        final = _demo_jobs(stack)  # the data, as the jobs table holds it at the end
    _judge(result, final, jobs, sweep, sweep_size)
    print(summary_table(result), file=out, flush=True)
    return result


def _command(stack: LocalStack, text: str, out: TextIO) -> None:
    assert stack.page is not None, "the demo drives the local page"
    answer = stack.page.command(f"/train {text}", DEMO_USER)
    shown = text if len(text) < 70 else text[:67] + "…"
    print(f"  /train {shown}  -> HTTP {answer['status']}", file=out, flush=True)


def _demo_jobs(stack: LocalStack) -> list[Job]:
    owner = Owner(team_id=TEAM_ID, user_id=DEMO_USER)
    found: list[Job] = []
    cursor = None
    while True:
        page = stack.store.jobs_of_owner(owner, limit=100, cursor=cursor)
        found.extend(page.jobs)
        cursor = page.cursor
        if cursor is None:
            return found


def _progress_line(jobs: list[Job], expected: int, elapsed: float) -> str:
    counts = Counter(j.status.value for j in jobs)
    parts = " · ".join(f"{s.value} {counts[s.value]}" for s in JobStatus if counts[s.value])
    done = sum(1 for j in jobs if j.is_terminal)
    return f"  [{elapsed:5.0f} s] {done}/{expected} finished   {parts}"


def retries_of(job: Job) -> dict[str, int]:
    """Attempts that did not end the job, by failure class (capacity, quota, algorithm …)."""
    causes: Counter = Counter()
    for attempt in job.attempts:
        if attempt.failure_class is not None and attempt.outcome in (AttemptOutcome.FAILED, AttemptOutcome.NOT_STARTED):
            causes[attempt.failure_class.value] += 1
    if job.status is S.FAILED and job.attempts and job.attempts[-1].failure_class is not None:
        causes[job.attempts[-1].failure_class.value] -= 1  # the last failure ended it: no retry
    return {k: v for k, v in causes.items() if v > 0}


def _judge(result: DemoResult, final: list[Job], jobs: list[Scripted], sweep: Scripted, sweep_size: int) -> None:
    by_name = {j.name: j for j in final}
    wanted = list(jobs) + [
        Scripted(f"{sweep.name}-{i + 1}", "", sweep.expected, sweep.min_attempts, sweep.max_attempts) for i in range(sweep_size)
    ]
    for script in wanted:
        job = by_name.get(script.name)
        if job is None:
            result.missing.append(script.name)
            continue
        attempts = len([a for a in job.attempts if a.outcome is not AttemptOutcome.NOT_STARTED])
        problems = []
        if job.status is not script.expected:
            problems.append(f"ended {job.status.value}, expected {script.expected.value}")
        if attempts < script.min_attempts or (script.max_attempts is not None and attempts > script.max_attempts):
            problems.append(f"{attempts} attempts, expected {script.min_attempts}..{script.max_attempts or '∞'}")
        result.jobs.append(
            JobOutcome(
                name=script.name,
                job_id=job.job_id,
                status=job.status.value,
                expected=script.expected.value,
                attempts=attempts,
                retries=retries_of(job),
                ok=not problems,
                why="; ".join(problems),
            )
        )


def summary_table(result: DemoResult) -> str:
    rows = [("job", "status", "expected", "attempts", "retries", "ok")]
    for job in result.jobs:
        retries = ", ".join(f"{k} {v}" for k, v in sorted(job.retries.items())) or "-"
        rows.append((job.name, job.status, job.expected, str(job.attempts), retries, "yes" if job.ok else f"NO: {job.why}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["", "Summary"]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1])
    by_status = ", ".join(f"{k} {v}" for k, v in sorted(result.by_status.items())) or "none"
    causes = ", ".join(f"{k} {v}" for k, v in sorted(result.retries_by_cause.items())) or "none"
    lines.append(f"  jobs by final status: {by_status}")
    lines.append(f"  attempts: {sum(j.attempts for j in result.jobs)} · retries by cause: {causes}")
    lines.append(f"  wall time: {result.wall_seconds:.1f} s")
    if result.missing:
        lines.append(f"  never registered: {', '.join(result.missing)}")
    if result.timed_out:
        lines.append("  timed out before every job finished")
    lines.append("  verdict: " + ("every job ended as scripted" if result.ok else "SOME JOBS DID NOT END AS SCRIPTED"))
    return "\n".join(lines)
