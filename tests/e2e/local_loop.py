"""Waiting on local mode by its progress, not by the wall clock.

Local mode runs the launcher and the monitor's sweep on schedules (threads seconds apart) and
the SageMaker stand-in moves its jobs on the real clock. A test that polls for a job's state
until a fixed deadline fails on a loaded machine whenever those threads get too little CPU:
the job was never wrong, only late. Here the test runs the scheduled functions itself, a round
at a time in its own thread (the same :class:`infra.local.functions.Function`, the same
EventBridge "Scheduled Event" the schedule threads send), until what it waits for is there. It
fails only when rounds stopped changing anything that can be seen (the jobs' items, what the
stand-in says of their attempts, their cards and threads) while SageMaker has nothing more
planned for them, and then it says what it saw. However slow the machine, a round it runs is
a round the loop made."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from backend.domain.model import Job, Owner
from infra.local import TEAM_ID, LocalStack
from infra.local.functions import scheduled_event

T = TypeVar("T")

# Rounds in a row that changed nothing, over at least this long (a retry's backoff, a deferred
# delivery and a lease are wall-clock waits a fast machine must be given), before giving up.
QUIET_ROUNDS = 10
QUIET_SECONDS = 15.0
ROUND_PAUSE = 0.1  # between rounds: the event bus and the bot's threads get their turn


def run_schedules(stack: LocalStack) -> None:
    """One round of every scheduled function (launcher, monitor sweep), invoked in this thread
    as its schedule would invoke it."""
    assert stack.driver is not None
    for key in sorted(stack.driver.schedules):
        logical_id, _, event_name = key.partition(".")
        function = stack.driver.functions[logical_id]
        function.invoke(scheduled_event(f"{function.spec.name}-{event_name}"))


def jobs_named(stack: LocalStack, user: str = "U0YOU") -> dict[str, Job]:
    jobs = stack.store.jobs_of_owner(Owner(team_id=TEAM_ID, user_id=user), limit=100).jobs
    return {job.name: job for job in jobs}


def card(stack: LocalStack, job: Job) -> dict[str, Any] | None:
    """The job's root card (thread root) as the Slack stand-in holds it."""
    if job.slack is None or not job.slack.thread_ts:
        return None
    return stack.slack.message(job.slack.channel_id, job.slack.thread_ts)


def card_says(stack: LocalStack, job: Job, words: str) -> bool:
    """Whether the job's card (its blocks, as mrkdwn: ``is *Completed*``) contains ``words``."""
    message = card(stack, job)
    return message is not None and words in json.dumps(message.get("blocks"), ensure_ascii=False)


def replies(stack: LocalStack, job: Job) -> list[dict[str, Any]]:
    if job.slack is None or not job.slack.thread_ts:
        return []
    return stack.slack.thread(job.slack.channel_id, job.slack.thread_ts)[1:]


def _attempt(stack: LocalStack, job: Job) -> tuple[str, str, bool]:
    """(its current attempt's name, what the stand-in says of it, whether the stand-in still
    has a status change planned for it)."""
    attempt = job.current_attempt
    if attempt is None:
        return "", "no attempt", False
    described = stack.sagemaker.describe_job(attempt.name)
    if described is None:
        return attempt.name, "unknown to SageMaker", False
    said = f"{described['TrainingJobStatus']}/{described['SecondaryStatus']}"
    return attempt.name, said, stack.sagemaker.next_change_at(attempt.name) is not None


def _targets(stack: LocalStack, job: Job) -> tuple[str, ...]:
    """The notifiers the outbox tracks: the test's own store is not wired with them (the
    functions' stores are), so the names the job's delivered marks carry stand in."""
    return tuple(stack.store.notify_targets) or tuple(job.delivered)


def notice_due(stack: LocalStack, job: Job) -> str:
    from backend.domain import notice

    due = notice.delivery_due(job, _targets(stack, job))
    return due.isoformat(timespec="seconds") if due is not None else "-"


def _owed(stack: LocalStack, job: Job) -> bool:
    """Whether the outbox owes an urgent change of ``job`` that its drain will deliver soon: its
    writer did not (another dispatcher's lease was live, or its round was cut short), so it is
    due once that lease may be taken over (at most DELIVERY_LEASE + SEND_BOUND after the write).
    Counted as the loop still having work planned until 30 s past that."""
    from datetime import UTC, datetime, timedelta

    from backend.domain import notice

    targets = _targets(stack, job)
    if not notice.pending_seqs(job, targets) or not notice.is_urgent(job, targets):
        return False
    due = notice.delivery_due(job, targets)
    return due is not None and datetime.now(UTC) < due + timedelta(seconds=30)


def describe(stack: LocalStack, job: Job) -> str:
    """What a person debugging a wait wants to see of one job."""
    name, said, _planned = _attempt(stack, job)
    history = "; ".join(f"{e.from_status.value if e.from_status else '-'}->{e.to_status.value} {e.reason!r}" for e in job.history[-4:])
    message = card(stack, job)
    shown = json.dumps(message.get("blocks"), ensure_ascii=False)[:400] if message else "(no card)"
    told = [r.get("text", "")[:80] for r in replies(stack, job)]
    return (
        f"{job.name} ({job.job_id}) is {job.status.value} v{job.version}; attempt {name or '-'}: SageMaker says {said}; "
        f"history …{history}; delivered {job.delivered}; outbox due {notice_due(stack, job)}; card {shown}; replies {told}"
    )


def drive_until(
    stack: LocalStack,
    what: str,
    done: Callable[[], T | None],
    *,
    watch: Sequence[str] = (),
    user: str = "U0YOU",
) -> T:
    """Run rounds of the scheduled functions until ``done()`` answers (its answer is returned).
    ``watch``: the names of the jobs (a sweep's name: its jobs) whose state the failure shows
    and whose progress (item, attempt, card, thread) counts as the loop moving."""
    quiet = 0
    changed_at = time.monotonic()
    last: list[str] | None = None
    rounds = 0
    while True:
        value = done()
        if value:
            return value
        jobs = jobs_named(stack, user)
        seen, planned = [], False
        for name in watch:
            named = [j for n, j in sorted(jobs.items()) if n == name or n.startswith(name + "-")]
            if not named:
                seen.append(f"{name}: not registered")
            for job in named:
                seen.append(describe(stack, job))
                planned = planned or _attempt(stack, job)[2] or _owed(stack, job)
        if seen != last:
            last, quiet, changed_at = seen, 0, time.monotonic()
        elif not planned:
            quiet += 1
        if quiet >= QUIET_ROUNDS and time.monotonic() - changed_at >= QUIET_SECONDS:
            raise AssertionError(
                f"waiting for {what}: {rounds} rounds of the launcher and monitor, the last {quiet} "
                f"({time.monotonic() - changed_at:.0f} s) with nothing left planned on SageMaker's side changed nothing. Saw:\n"
                + "\n".join(seen or ["(no job watched)"])
            )
        run_schedules(stack)
        rounds += 1
        time.sleep(ROUND_PAUSE)


def until_status(stack: LocalStack, name: str, status: Any, *, card_words: str | None = None, user: str = "U0YOU") -> Job:
    """Drive the loop until job ``name`` is ``status`` (and its card says ``card_words``);
    fails at once, saying so, if the job ends in another status."""

    def reached() -> Job | None:
        job = jobs_named(stack, user).get(name)
        if job is None:
            return None
        if job.status is not status and job.is_terminal:
            raise AssertionError(f"waiting for {name} to be {status.value}, it ended: {describe(stack, job)}")
        if job.status is status and (card_words is None or card_says(stack, job, card_words)):
            return job
        return None

    shown = f" and its card to say {card_words!r}" if card_words else ""
    return drive_until(stack, f"{name} to be {status.value}{shown}", reached, watch=[name], user=user)
