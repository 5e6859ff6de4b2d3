"""Issue 15's pure rules: failure classes in plain words, spot interruptions as capacity, the
per-job checkpoint location, stall_alert in the job grammar, and log lines made inert."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.adapters.slack import render
from backend.domain.forensics import exit_code, inert_line, plain_failure, wants_tail
from backend.domain.logtail import TailState
from backend.domain.model import Attempt, AttemptOutcome, FailureClass, HostTail, LogTail, transition
from backend.domain.policy import classify_failure_reason
from backend.domain.spec import BadCommand, job_spec, sweep_specs
from backend.domain.status import JobStatus
from tests.conftest import T0, job_args, make_job

F = FailureClass
GOOD = {
    "name": "bert",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.g5.xlarge",
    "output": "s3://out-bucket/runs/",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
}


def _spot(**extra):
    return job_args(EnableManagedSpotTraining=True, StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}, **extra)


def test_a_spot_job_without_a_checkpoint_gets_one_per_job_under_its_output_path():
    job = make_job(job_args=_spot())
    assert job.job_args.CheckpointConfig is not None
    assert job.job_args.CheckpointConfig.S3Uri == f"s3://out-bucket/runs/{job.job_id}/checkpoints"
    # Every attempt's request carries the same location: it is part of the job's JobArgs.
    first, second = job.job_args.to_request(f"{job.job_id}-a1"), job.job_args.to_request(f"{job.job_id}-a2")
    assert first["CheckpointConfig"] == second["CheckpointConfig"]


def test_a_spot_job_keeps_the_checkpoint_it_named_and_an_on_demand_job_gets_none():
    named = make_job(job_args=_spot(CheckpointConfig={"S3Uri": "s3://mine/ckpt"}))
    assert named.job_args.CheckpointConfig is not None and named.job_args.CheckpointConfig.S3Uri == "s3://mine/ckpt"
    assert make_job().job_args.CheckpointConfig is None


def test_a_spot_interruption_that_runs_out_of_max_wait_is_capacity_not_the_users_fault():
    interrupted = classify_failure_reason("", secondary_status="MaxWaitTimeExceeded", max_wait_seconds=7200, spot_interrupted=True)
    assert interrupted.failure_class is F.CAPACITY and "spot interruption" in interrupted.reason
    # Without an interruption too: max_wait is at least max_runtime, so the run did not run out
    # of its own time, it waited for spot capacity too long (bounded by the capacity wait).
    assert classify_failure_reason("", secondary_status="MaxWaitTimeExceeded", max_wait_seconds=7200).failure_class is F.CAPACITY
    # Interrupted, then out of its own max runtime: the user's limit, not capacity.
    ran_out = classify_failure_reason("", secondary_status="MaxRuntimeExceeded", max_runtime_seconds=3600, spot_interrupted=True)
    assert ran_out.failure_class is F.USER
    # An interrupted job whose code then failed is still the code's failure.
    code = classify_failure_reason("AlgorithmError: ExitCode 1", spot_interrupted=True)
    assert code.failure_class is F.ALGORITHM


@pytest.mark.parametrize(
    ("failure_class", "reason", "words"),
    [
        (F.CAPACITY, "CapacityError: Unable to provision", "waiting for capacity"),
        (F.CAPACITY, "spot interruption: EC2 took the spot instances back", "resumes from the checkpoints"),
        (F.QUOTA, "ResourceLimitExceeded: …", "quota"),
        (F.ALGORITHM, "AlgorithmError: ExitCode 1", "Your training code failed"),
        (F.USER, "ClientError: image not found", "Bad configuration"),
        (F.USER, "MaxRuntimeExceeded: the job ran longer than its max_runtime", "run-time limit"),
        (F.STOPPED, "stopped by <@U1>", "Stopped by someone"),
    ],
)
def test_every_failure_class_a_person_acts_on_has_its_plain_words(failure_class, reason, words):
    attempt = Attempt(number=1, name="j-a1", claimed_at=T0, outcome=AttemptOutcome.FAILED, failure_class=failure_class, reason=reason)
    assert words in plain_failure(attempt)


def test_the_cards_last_line_says_which_failure_in_plain_words():
    job = make_job(retry_budget=0)
    attempt = Attempt(
        number=1,
        name=f"{job.job_id}-a1",
        claimed_at=T0,
        outcome=AttemptOutcome.FAILED,
        failure_class=F.USER,
        reason="MaxRuntimeExceeded: …",
    )
    job = transition(job, JobStatus.LAUNCHED, at=T0, attempts=[attempt])
    job = transition(job, JobStatus.FAILED, at=T0 + timedelta(hours=1), reason="MaxRuntimeExceeded: …")
    card = render.job_card(job, "us-east-1")
    assert card["blocks"][-1]["type"] == "context" and "run-time limit" in card["blocks"][-1]["elements"][0]["text"]
    # A running job's card has no such line; one stopped before it was launched says who.
    assert "run-time limit" not in str(render.job_card(make_job(), "us-east-1"))
    stopped = transition(make_job(), JobStatus.STOPPED, at=T0, reason="stopped by <@U1> before launch")
    assert "Stopped by someone" in render.job_card(stopped, "us-east-1")["blocks"][-1]["elements"][0]["text"]


def test_a_log_line_can_never_mention_link_or_close_the_code_block():
    line = inert_line("<!here> @channel <@U0BOSS> see https://evil.example ```\x1b[31mred\x1b[0m")
    shown = render.esc(line, 1000)
    assert "<!" not in shown and "<@" not in shown and "@channel" not in shown and "https://" not in shown and "```" not in shown
    assert "\x1b" not in line
    assert len(inert_line("z" * 10_000)) <= 300


def test_the_tail_text_keeps_the_newest_lines_within_the_byte_budget_and_names_the_hosts():
    tail = LogTail(
        state=TailState.READ,
        hosts=[HostTail(stream=f"j-a1/algo-{n}-1700000000", lines=[f"h{n} line {i}" for i in range(30)]) for n in (1, 2)],
    )
    text = tail.text(max_lines=5, max_bytes=120)
    assert len(text.encode()) <= 120
    assert text.splitlines()[0] == "[algo-1]" and "h1 line 29" in text and "h1 line 24" not in text


def test_the_exit_code_is_read_from_sagemakers_reason_and_only_container_failures_want_a_tail():
    assert exit_code('AlgorithmError: ExecuteUserScriptError: ExitCode 137 ErrorMessage "Killed"') == "137"
    assert exit_code("CapacityError: no capacity") == ""
    assert wants_tail(F.ALGORITHM, "AlgorithmError: x") and wants_tail(F.USER, "ClientError: bad entry point")
    assert not wants_tail(F.CAPACITY, "CapacityError: x") and not wants_tail(F.USER, "MaxRuntimeExceeded: x")


def test_stall_alert_is_a_duration_of_at_least_a_minute_or_off():
    assert job_spec({**GOOD, "stall_alert": "45m"}).stall_alert_seconds == 2700
    assert job_spec({**GOOD, "stall_alert": "off"}).stall_alert_seconds == 0
    assert job_spec(GOOD).stall_alert_seconds is None  # the team default applies
    with pytest.raises(BadCommand) as refused:
        job_spec({**GOOD, "stall_alert": "10s"})
    assert refused.value.problems == ["stall_alert: stall_alert is at least 1m (or off)"]
    swept = sweep_specs({**GOOD, "stall_alert": "1h", "hp.lr": "1,2"}, 10)
    assert [s.stall_alert_seconds for s in swept] == [3600, 3600]
