"""The job model's naming and bookkeeping rules, exactly: job ids (slug, prefix, suffix),
attempt names, the request SageMaker gets, a new job's first state, times as sortable strings,
fair-share tags, and the examples validation messages show."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from backend.domain import fairness
from backend.domain.history import HistoryEntry
from backend.domain.model import (
    JOB_ID_MAX,
    Attempt,
    AttemptOutcome,
    Owner,
    SlackThread,
    attempt_name,
    label_of,
    new_job,
    new_job_id,
    parse_attempt_name,
    slugify,
)
from backend.domain.status import JobStatus
from backend.domain.times import format_utc, parse_utc, to_utc, utcnow
from tests.conftest import T0, job_args, make_job

# --- job ids ---------------------------------------------------------------------------------


def _base36(number: int, width: int) -> str:
    digits = ""
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[digit] + digits
    return digits


def test_a_job_id_is_the_prefix_the_slug_and_six_base36_characters_of_the_tokens_hash():
    suffix = _base36(int(hashlib.sha256(b"trigger-1").hexdigest(), 16), 6)
    assert new_job_id("Bert  LR=3e-5!", "trigger-1") == f"Bert-LR-3e-5-{suffix}"
    assert new_job_id("bert", "trigger-1", prefix="tb-") == f"tb-bert-{suffix}"


def test_a_job_id_without_a_token_gets_a_random_six_character_suffix():
    ids = {new_job_id("bert") for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) == len("bert-") + 6 and i.startswith("bert-") and i[5:].isalnum() and i[5:].islower() for i in ids)


def test_a_long_name_is_shortened_so_the_prefixed_id_still_fits():
    plain = new_job_id("x" * 80, "t")
    prefixed = new_job_id("x" * 80, "t", prefix="team-nlp-")
    assert len(plain) == JOB_ID_MAX and len(prefixed) == JOB_ID_MAX
    assert prefixed.startswith("team-nlp-xxx")


@pytest.mark.parametrize("prefix", ["-tb", "TB-", "a" * 13, "tb_"])
def test_a_bad_prefix_is_refused(prefix):
    with pytest.raises(ValueError, match="job id prefix"):
        new_job_id("bert", "t", prefix=prefix)


@pytest.mark.parametrize(
    ("name", "slug"),
    [("bert lr=3e-5", "bert-lr-3e-5"), ("--a--b--", "a-b"), ("!!!", "job"), ("", "job"), ("a" * 60, "a" * 51)],
)
def test_names_are_slugged_to_what_sagemaker_accepts(name, slug):
    assert slugify(name) == slug


def test_a_slug_cut_at_its_limit_does_not_end_in_a_dash():
    assert slugify("abc-def", max_len=4) == "abc"


# --- attempts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("number", [0, 1000, -1])
def test_attempt_numbers_outside_1_to_999_have_no_name(number):
    with pytest.raises(ValueError, match=f"attempt number {number} is outside 1..999"):
        attempt_name("bert-abc123", number)


def test_attempt_names_round_trip_at_both_ends_of_the_range():
    assert attempt_name("bert-abc123", 1) == "bert-abc123-a1"
    assert attempt_name("bert-abc123", 999) == "bert-abc123-a999"
    assert parse_attempt_name("bert-abc123-a999") == ("bert-abc123", 999)
    assert parse_attempt_name("bert-abc123-a") is None
    assert parse_attempt_name("-bad-a1") is None


def test_the_next_attempt_is_named_after_the_attempts_so_far_and_replacing_one_keeps_the_others():
    job = make_job()
    assert job.next_attempt_name() == f"{job.job_id}-a1"
    first = Attempt(number=1, name=f"{job.job_id}-a1", claimed_at=T0)
    second = Attempt(number=2, name=f"{job.job_id}-a2", claimed_at=T0)
    job = job.model_copy(update={"attempts": [first, second]})
    assert job.next_attempt_name() == f"{job.job_id}-a3" and job.current_attempt == second
    done = first.model_copy(update={"outcome": AttemptOutcome.FAILED})
    assert job.replace_attempt(done) == [done, second]


# --- a new job ---------------------------------------------------------------------------------


def test_a_new_job_starts_new_with_one_submitted_entry_and_every_field_it_was_given():
    owner = Owner(team_id="T1", user_id="U1")
    job = new_job(
        name="bert",
        job_args=job_args(),
        owner=owner,
        now=T0,
        slack=SlackThread(channel_id="C1"),
        priority=7,
        retry_budget=3,
        client_token="tok",
        sweep_id="sw",
        preset="nlp",
        prefix="tb-",
    )
    assert job.job_id == new_job_id("bert", "tok", "tb-")
    assert job.status is JobStatus.NEW and job.name == "bert" and job.owner == owner
    assert job.history == [HistoryEntry(seq=1, at=T0, from_status=None, to_status=JobStatus.NEW, reason="submitted")]
    assert (job.created_at, job.updated_at, job.version, job.last_seq) == (T0, T0, 1, 1)
    assert (job.priority, job.retry_budget, job.client_token, job.sweep_id, job.preset) == (7, 3, "tok", "sw", "nlp")
    assert job.slack == SlackThread(channel_id="C1") and job.job_args == job_args()
    assert new_job(name="x", job_args=job_args(), owner=owner, now=T0, job_id="given-id").job_id == "given-id"


def test_a_new_jobs_defaults():
    job = new_job(name="bert", job_args=job_args(), owner=Owner(team_id="T1", user_id="U1"), now=T0)
    assert (job.priority, job.retry_budget, job.slack, job.client_token, job.sweep_id, job.preset) == (5, 2, None, None, None, None)
    assert job.attempts == [] and job.current_attempt is None and job.algorithm_failures == 0


# --- the request ---------------------------------------------------------------------------------


def test_the_request_leaves_out_empty_lists_and_unset_parts():
    args = job_args(InputDataConfig=[], Tags=[])
    request = args.to_request("bert-abc123-a1")
    assert "InputDataConfig" not in request and "Tags" not in request and "CheckpointConfig" not in request
    assert "MaxWaitTimeInSeconds" not in request["StoppingCondition"]
    assert list(request)[0] == "TrainingJobName"
    tagged = job_args(Tags=[{"Key": "team", "Value": "nlp"}]).to_request("n-a1")
    assert tagged["Tags"] == [{"Key": "team", "Value": "nlp"}] and tagged["InputDataConfig"]


@pytest.mark.parametrize(
    ("overrides", "example"),
    [
        ({"AlgorithmSpecification": {"TrainingImage": "not an image"}}, "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"),
        ({"RoleArn": "SageMakerRole"}, "arn:aws:iam::123456789012:role/SageMakerRole"),
        ({"OutputDataConfig": {"S3OutputPath": "https://x"}}, "s3://my-bucket/runs"),
        ({"InputDataConfig": [{"DataSource": {"S3DataSource": {"S3Uri": "/data"}}}]}, "s3://my-bucket/train"),
        ({"CheckpointConfig": {"S3Uri": "/ckpt"}}, "s3://my-bucket/checkpoints"),
    ],
)
def test_a_bad_value_is_answered_with_a_good_example(overrides, example):
    with pytest.raises(ValidationError) as info:
        job_args(**overrides)
    assert f"expected e.g. {example}" in str(info.value)


@pytest.mark.parametrize(
    ("loc", "label"),
    [
        (("ResourceConfig", "InstanceType"), "instance"),
        (("HyperParameters", "lr"), "hp.lr"),
        (("HyperParameters",), "hp"),
        (("InputDataConfig", 0, "DataSource", "S3DataSource", "S3Uri"), "input"),
        (("StoppingCondition", "MaxWaitTimeInSeconds"), "max_wait"),
        (("Unknown", "Field"), "Unknown.Field"),
        ((), "request"),
    ],
)
def test_validation_errors_are_labelled_with_the_grammars_names(loc, label):
    assert label_of(loc) == label


# --- times and fair share ------------------------------------------------------------------------


def test_times_are_stored_as_fixed_width_utc_strings_that_sort_like_the_instants():
    assert format_utc(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    assert format_utc(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"  # naive is UTC
    plus_two = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert to_utc(plus_two) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and to_utc(plus_two).tzinfo is UTC
    assert parse_utc("2026-01-02T03:04:05.000000Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_utc("2026-01-02T05:04:05+02:00") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_utc("2026-01-02T03:04:05").tzinfo is UTC


def test_an_owners_jobs_are_tagged_one_quantum_apart_from_now_or_the_owners_clock():
    now = T0.timestamp()
    assert fairness.first_tag(None, T0) == now
    assert fairness.first_tag(now - 5, T0) == now  # a clock behind now does not hold the owner back
    assert fairness.first_tag(now + 600, T0) == now + 600
    assert fairness.batch_tags(now, 3) == [now, now + 60, now + 120]
    assert fairness.next_clock(now, 3) == now + 180


def test_launch_order_is_priority_then_tag_then_age_then_id():
    early = make_job("a", priority=5).model_copy(update={"queue_tag": 10.0})
    late = make_job("b", priority=5).model_copy(update={"queue_tag": 20.0})
    urgent = make_job("c", priority=9).model_copy(update={"queue_tag": 99.0})
    older = make_job("d", priority=5, now=T0 - timedelta(minutes=1)).model_copy(update={"queue_tag": 20.0})
    assert sorted([late, early, urgent, older], key=fairness.launch_order) == [urgent, early, older, late]
    assert fairness.launch_order(urgent) == (0, 99.0, urgent.created_at, urgent.job_id)


def test_a_slug_is_cut_after_leading_separators_are_dropped():
    assert slugify("!abc", max_len=3) == "abc"


def test_the_clock_is_aware_utc_now():
    before = datetime.now(UTC)
    now = utcnow()
    assert now.tzinfo is UTC and before <= now <= datetime.now(UTC)


def test_an_owner_without_a_clock_starts_at_now_even_at_the_epoch():
    assert fairness.first_tag(None, datetime(1970, 1, 1, tzinfo=UTC)) == 0.0


@pytest.mark.parametrize(("name", "slug"), [("XL model", "XL-model"), ("BOX", "BOX"), ("x--y", "x-y")])
def test_letters_at_either_end_of_a_name_are_kept(name, slug):
    assert slugify(name) == slug
