"""Start on submit, through the whole local system: 80 `/train submit`s signed as Slack signs
them arrive at once (25 at a time); with the launcher's schedule out of the way (once an hour here: it never
fires during this test) every job reaches SageMaker through coalesced kicks alone.
The launcher never runs twice at once (its reserved concurrency), at most one kicked run ever
waits, and every job is created exactly once."""

from __future__ import annotations

import logging
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.domain.status import JobStatus
from infra.local import CHANNEL_ID, TEAM_ID, LocalOptions, LocalStack
from infra.local.standins.slack_signing import signed_headers, slash_command_body

JOBS = 80  # 200 took 50 s of the suite; 80 from 25 threads at once coalesce the same way
SUBMIT = (
    "submit name=burst-{n} image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole"
)


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    options = LocalOptions(
        port=0, chaos=0.0, launcher_every=3600.0, monitor_every=3600.0, run_seconds=600.0, seed=1,
        capacity={"ml.g5.xlarge": 2 * JOBS}, log_transitions=False, write_connection_file=False,
        # One launcher at a time is the operator's choice (a new account cannot reserve any).
        parameters={"LauncherReservedConcurrency": "1"},
    )
    with LocalStack(options) as running:
        yield running


def _submit(stack: LocalStack, n: int) -> int:
    user = f"U0USER{n % 50:02d}"
    body = slash_command_body(
        text=SUBMIT.format(n=n), user_id=user, team_id=TEAM_ID, channel_id=CHANNEL_ID,
        response_url=stack.slack.response_url(CHANNEL_ID, user),
    )
    request = urllib.request.Request(stack.bot.url, data=body.encode(), headers=signed_headers(stack.signing_secret, body))
    with urllib.request.urlopen(request, timeout=300) as response:
        return response.status


def test_a_burst_of_submits_is_all_launched_by_coalesced_kicks_one_launcher_at_a_time_never_created_twice(stack):
    launcher = stack.driver.functions["LauncherFunction"]
    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(lambda n: _submit(stack, n), range(JOBS)))
    assert statuses == [200] * JOBS

    # Lazy listeners register the jobs and kick; kicked launcher runs are invocations too.
    stack.lam.wait_idle(timeout=600)
    jobs = [j for j in stack.store.active_jobs() if j.name.startswith("burst-")]
    launched = [j for j in jobs if j.status in (JobStatus.LAUNCHED, JobStatus.IN_PROGRESS)]
    waiting = [j.job_id for j in stack.store.ready_jobs(None)]

    if len(launched) != JOBS:  # say where the others are: registered at all? in which state?
        errors = [e.strip().splitlines()[-1] for e in stack.lam.errors()]
        said = [m["text"][:120] for m in stack.slack.ephemerals() if "burst-" not in m["text"]][:5]
        states = Counter(j.status.value for j in jobs)
        raise AssertionError(f"{len(launched)} of {JOBS} launched; {len(waiting)} still queued; active {states}; invocation errors {errors[:5]}; other answers {said}")
    assert stack.driver.schedules["LauncherFunction.EveryMinute"] == 3600.0
    # Every launcher run was a kick, and the kicks coalesced: far fewer runs than submissions.
    assert 1 <= launcher.invocations < JOBS // 4
    assert launcher.max_running == 1, "two launchers worked at the same time"
    # One kicked run waiting at a time; one more only if that one waited past the kick's
    # expiry (120 s, Lambda's MaximumEventAgeInSeconds for the launcher), which a very loaded
    # machine can cause since local runs have no 120 s timeout.
    assert launcher.max_waiting <= 2, "kicked launcher runs piled up"
    created = Counter(stack.sagemaker.created_names)
    assert len(created) == JOBS and set(created.values()) == {1}, "a training job was created twice"
    assert all(len(j.attempts) == 1 for j in launched)
