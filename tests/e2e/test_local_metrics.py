"""Local mode shows a running job's latest metric values on its card (issue 24), as the README
says: the SageMaker stand-in's progress lines carry them, the monitor's scheduled sweep (driven
with its template Timeout, so it describes running jobs as on Lambda) stores them, and the card
on the page's channel shows them while the job runs."""

from __future__ import annotations

import json
import logging

from backend.domain.status import JobStatus
from infra.local import CHANNEL_ID, LocalOptions, LocalStack
from tests.e2e.local_loop import card_says, drive_until, jobs_named

SUBMIT = (
    "/train submit name=local-metrics image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole "
    "hp.trainbot_standin_duration=40 metric.loss='loss=([0-9.]+)' hp.trainbot_standin_metric_loss=0.2"
)


def test_a_running_job_in_local_mode_gets_its_latest_metrics_on_its_card_from_the_scheduled_sweep():
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    options = LocalOptions(
        port=0, chaos=0.0, launcher_every=0.5, monitor_every=1.0, events_every=0.2, startup_seconds=0.5,
        stop_seconds=0.5, seed=5, log_transitions=False, write_connection_file=False,
    )
    with LocalStack(options) as stack:
        stack.page.command(SUBMIT, "U0YOU")
        job = drive_until(
            stack,
            "local-metrics's latest metrics on its item",
            lambda: (j := jobs_named(stack).get("local-metrics")) and j.current_attempt is not None and j.current_attempt.metrics and j,
            watch=["local-metrics"],
        )
        assert job.status is JobStatus.IN_PROGRESS
        metrics = job.current_attempt.metrics
        assert metrics and 0.2 < metrics["loss"] < 0.3, job.current_attempt
        drive_until(stack, "local-metrics's card to show them", lambda: card_says(stack, job, "Latest metrics"), watch=["local-metrics"])
        card = stack.slack.message(CHANNEL_ID, job.slack.thread_ts)
        assert ":bar_chart: Latest metrics: loss 0." in json.dumps(card["blocks"])
        assert stack.slack.thread(CHANNEL_ID, job.slack.thread_ts)[1:] == []  # nothing in its thread
