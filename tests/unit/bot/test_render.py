"""Rendering: user text is inert, links point at the right consoles, replies say what and why."""

from __future__ import annotations

import json
from datetime import timedelta

from backend.adapters.slack import render
from backend.domain.model import Attempt, AttemptOutcome, attempt_name, transition
from backend.domain.status import JobStatus
from tests.conftest import T0, make_job


def test_escaping_makes_broadcasts_mentions_and_links_inert():
    text = render.esc("<!channel> <@U123> <https://evil|x> & co")
    assert "<" not in text and ">" not in text and "&amp; co" in text


def test_only_real_slack_user_ids_become_live_mentions():
    assert render.mention("U0ALICE") == "<@U0ALICE>"
    assert render.mention("<!channel>") == "&lt;!channel&gt;"


def test_console_and_log_links_name_the_training_job():
    assert render.console_url("eu-west-1", "j-a1") == "https://eu-west-1.console.aws.amazon.com/sagemaker/home?region=eu-west-1#/jobs/j-a1"
    assert render.logs_url("us-east-1", "j-a1").endswith("$252FTrainingJobs$3FlogStreamNameFilter$3Dj-a1")


def test_the_card_of_a_running_job_offers_stop_and_logs_and_a_failed_one_retry():
    job = make_job(user="U0ALICE")
    attempt = Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=T0, outcome=AttemptOutcome.RUNNING)
    running = transition(job, JobStatus.LAUNCHED, at=T0, attempts=[attempt])
    actions = [e["action_id"] for e in render.job_card(running, "us-east-1")["blocks"][-1]["elements"]]
    assert actions == [render.STOP_ACTION, render.LOGS_ACTION]
    failed = transition(running, JobStatus.FAILED, at=T0 + timedelta(minutes=3), reason="AlgorithmError: x")
    actions = [e["action_id"] for e in render.job_card(failed, "us-east-1")["blocks"][-1]["elements"]]
    assert actions == [render.RETRY_ACTION, render.LOGS_ACTION]


def test_the_status_card_lists_attempts_with_reasons_durations_billable_time_and_links():
    job = make_job()
    a1 = Attempt(
        number=1, name=attempt_name(job.job_id, 1), claimed_at=T0, launched_at=T0, started_at=T0,
        ended_at=T0 + timedelta(minutes=30), outcome=AttemptOutcome.FAILED, reason="CapacityError: none", billable_seconds=1700,
    )
    job = transition(job, JobStatus.LAUNCHED, at=T0, attempts=[a1])
    blob = json.dumps(render.status_card(job, "us-east-1", T0 + timedelta(hours=1))["blocks"])
    assert "ran 30 min" in blob and "billable 28 min" in blob and "CapacityError: none" in blob
    assert "console.aws.amazon.com/sagemaker" in blob and "cloudwatch" in blob


def test_durations_read_naturally():
    assert [render.duration(s) for s in (5, 480, 3725, 200000)] == ["5 s", "8 min", "1 h 02 min", "2 d 7 h"]


def test_problems_are_listed_escaped_with_the_right_form():
    text = render.problems_text(["name: '<!channel>' is bad"], "/train status <JobId>")
    assert "<!channel>" not in text and "&lt;JobId&gt;" in text


def test_help_shows_every_command():
    text = render.help_text()
    for command in ("submit", "sweep", "status", "list", "stop", "retry", "preset save"):
        assert f"/train {command}" in text or f"`{command}" in text


# --- issue 12: rendering that tells the truth -----------------------------------------------------


def test_help_renders_as_written_on_the_page_no_placeholder_becomes_a_link_and_code_spans_close():
    from tests.mrkdwn import mrkdwn

    page = mrkdwn(render.help_text())
    assert "<a href" not in page  # <JobId>, <name>, <value> are text, not links
    for placeholder in ("JobId", "name", "value", "channel"):
        assert f"&lt;{placeholder}&gt;" in page
    assert "`" not in page  # every backtick opened a code span that closed
    assert "<code>/train status &lt;JobId or name&gt;</code>" in page
    assert "<code>. Quote" not in page and "Quote values with spaces.</code>" not in page  # prose is not code


def test_a_card_with_many_long_attempts_keeps_the_newest_whole():
    job = make_job()
    attempts = [
        Attempt(
            number=n, name=attempt_name(job.job_id, n), claimed_at=T0, launched_at=T0, started_at=T0,
            ended_at=T0 + timedelta(minutes=5), outcome=AttemptOutcome.FAILED, reason=f"CapacityError: {'x' * 180} #{n}",
        )
        for n in range(1, 41)
    ]
    job = transition(job, JobStatus.LAUNCHED, at=T0, attempts=attempts)
    section = render.status_card(job, "us-east-1", T0 + timedelta(hours=1))["blocks"][1]["text"]["text"]
    assert len(section) <= render.MAX_SECTION
    assert f"*40.* `{attempt_name(job.job_id, 40)}`" in section and "#40 · <" in section  # the newest, whole
    rows = [line for line in section.split("\n") if line.startswith("*")][1:]
    assert all(row.endswith("|logs>") for row in rows)  # no row (and no link) cut in the middle
    kept = len(rows)
    assert f"_…{40 - kept} earlier attempts_" in section


def test_a_reason_trainbot_wrote_names_who_stopped_the_job_with_a_live_mention_and_nothing_else_is_live():
    assert render.reason_text("stopped by <@U0ALICE> before launch") == "stopped by <@U0ALICE> before launch"
    assert render.reason_text("AlgorithmError: stopped by <@U0EVE>") == "AlgorithmError: stopped by &lt;@U0EVE&gt;"
    assert render.reason_text("stopped by <@U0ALICE> <!channel>") == "stopped by <@U0ALICE> &lt;!channel&gt;"


def test_the_root_card_shows_its_owner_as_a_mention_as_every_message_does():
    card = json.dumps(render.job_card(make_job(user="U0ALICE"), "us-east-1"))
    assert "Owner <@U0ALICE>" in card and "`U0ALICE`" not in card
    # A CLI user's login name is no Slack member: shown as it is, inert.
    assert "Owner alice" in json.dumps(render.job_card(make_job(user="alice"), "us-east-1"))


def test_a_refusal_repeats_the_use_cases_own_words():
    assert render.not_authorized("only the sweep's author may confirm it") == ":lock: Only the sweep's author may confirm it."
    assert "<@U0ALICE>" in render.not_authorized("only <@U0ALICE> (the owner) or an admin may change x-1")


def test_a_queued_jobs_card_says_why_it_waits_with_times_not_countdowns_and_drops_it_once_launched():
    job = make_job(user="U0ALICE").model_copy(update={"waiting": "waiting: ml.g5.xlarge is at its limit of 4 instances in use"})
    text = json.dumps(render.job_card(job, "us-east-1")["blocks"])
    assert "waiting: ml.g5.xlarge is at its limit of 4 instances in use" in text

    retrying = transition(job, JobStatus.RETRYING, at=T0, reason="ResourceLimitExceeded: quota", next_attempt_at=T0 + timedelta(minutes=3))
    text = json.dumps(render.job_card(retrying, "us-east-1")["blocks"])
    assert f"next attempt at {(T0 + timedelta(minutes=3)):%H:%M:%S} UTC" in text
    assert "waiting:" not in text  # a status change clears the launcher's reason

    launched = transition(retrying, JobStatus.LAUNCHED, at=T0, reason="created", next_attempt_at=None)
    assert "hourglass" not in json.dumps(render.job_card(launched, "us-east-1")["blocks"])


def test_help_tells_fallback_lists_volume_and_checkpoint():
    text = render.help_text()
    assert "`instance` (a fallback list `instance=ml.p5.48xlarge,ml.p4d.24xlarge`: first choice first, the next one with room when SageMaker has no capacity)" in text
    assert "`volume` (GB of storage per instance)" in text
    assert "`checkpoint` (`s3://…`: where /opt/ml/checkpoints is saved, resumed by every attempt)" in text


def test_a_sweep_summary_counts_the_failures_whose_lines_the_record_no_longer_keeps():
    text = render.sweep_summary("grid", "U1", 100, {"Failed": 52, "Completed": 48}, ["*g-99* Failed", "*g-100* Failed"], unlisted=30)
    assert text.count("• ") == 2 and "_…and 30 more_" in text
    assert "more" not in render.sweep_summary("grid", "U1", 2, {"Failed": 2}, ["a", "b"])


def test_the_plan_end_warning_says_the_plan_its_end_and_what_happens_with_and_without_checkpoints_or_fallback():
    from backend.domain.model import Checkpoint, FailureClass, note

    ends = T0 + timedelta(hours=2)  # Mon 11:00 UTC
    plain = make_job(user="U0ALICE", plan="p5-dec")
    warned = Attempt(
        number=1, name=attempt_name(plain.job_id, 1), claimed_at=T0, outcome=AttemptOutcome.RUNNING, plan="p5-dec", plan_ends_at=ends, plan_end_warned_at=T0
    )

    def warn(job):
        job = transition(job, JobStatus.LAUNCHED, at=T0 - timedelta(hours=3), attempts=[warned])
        job = job.model_copy(update={"history": note(job, at=T0, reason="plan ends")})
        return render.plan_end_warning(job, job.last_seq)

    text = warn(plain)
    assert "runs on plan `p5-dec`, which ends Mon 11:00 UTC" in text and "30 min before then (10:30 UTC)" in text
    assert "saves no checkpoints" in text and "ends Stopped" in text
    with_both = warn(make_job(user="U0ALICE", plan="p5-dec", plan_fallback=True).model_copy(
        update={"job_args": plain.job_args.model_copy(update={"CheckpointConfig": Checkpoint(S3Uri="s3://ckpt-bucket/runs")})}
    ))
    assert "copied to `s3://ckpt-bucket/runs`: write one before 10:30 UTC" in with_both and "runs it again on on-demand capacity" in with_both

    stopped = warned.model_copy(update={"outcome": AttemptOutcome.STOPPED, "failure_class": FailureClass.PLAN_ENDED})
    retrying = transition(
        transition(plain.model_copy(update={"plan_fallback": True}), JobStatus.LAUNCHED, at=T0, attempts=[warned]),
        JobStatus.RETRYING, at=ends, attempts=[stopped],
    )
    assert render.failure_verdict(retrying).endswith("Trainbot runs it again on on-demand capacity (plan_fallback=ondemand).")
    assert "stopped by its plan's end" in json.dumps(render.status_card(retrying, "us-east-1", ends))


def test_a_presets_spend_shows_its_types_and_no_empty_owner_rows():
    from backend.domain.cost import spend_of_hours

    preset = render.spend_text(spend_of_hours([(None, "ml.g5.xlarge", None, 2.0)]))
    assert "*By instance type*: `ml.g5.xlarge` 2" in preset
    assert "By user" not in preset and "By team" not in preset
    everyone = render.spend_text(spend_of_hours([("U1", "ml.g5.xlarge", None, 2.0)]))
    assert "*By user*: " in everyone and "*By team*: " in everyone
