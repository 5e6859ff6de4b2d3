"""What an idle run costs (issue 26): the launcher runs every minute and the monitor every five,
and most of their runs find nothing to do. Through the template's handlers on moto, counting
every AWS call (``BaseClient._make_api_call``) of a run after the first.

An idle launcher tick reads the queue (parked types, expired claims, due retries, ready jobs:
four Queue index queries) and the instances in use (the Active index's projection: the plan
watch needs it while jobs run on training plans), and stops: it used to read the holds record
as well, before learning there was nothing due. And neither imports pydantic: no model is
built before a job is read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import botocore.client
import pytest

from backend.domain.records import RecordKind
from backend.domain.times import format_utc
from backend.services.launcher import HOLDS_KEY
from tests.harness import Stack

ROOT = Path(__file__).resolve().parents[2]
QUEUE, ACTIVE = ("dynamodb", "Query", "Queue"), ("dynamodb", "Query", "Active")
IDLE_LAUNCHER = [QUEUE] * 4 + [ACTIVE]


@pytest.fixture
def stack(moto_aws) -> Iterator[Stack]:
    built = Stack()
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, str, str]]:
    """Every AWS call from now on: (service, operation, the index queried or the record read)."""
    seen: list[tuple[str, str, str]] = []
    original = botocore.client.BaseClient._make_api_call

    def recorded(client, operation, params):
        key = params.get("Key", {}).get("JobId", {}).get("S", "")
        seen.append((client.meta.service_model.service_name, operation, params.get("IndexName") or key))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recorded)
    return seen


def test_an_idle_launcher_run_reads_the_queue_and_the_instances_in_use_and_stops(stack: Stack, calls):
    stack.launch()  # the first run: what it reads is the same, the clients are made
    calls.clear()
    report = stack.launch()
    assert report["due"] == 0 and report["launched"] == 0
    assert calls == IDLE_LAUNCHER


def test_a_launcher_run_with_jobs_running_and_nothing_due_reads_no_more(stack: Stack, calls):
    job = stack.submit("bert")
    stack.launch()
    assert stack.store.get(job.job_id).attempts
    calls.clear()
    report = stack.launch()
    assert report["due"] == 0
    assert calls == IDLE_LAUNCHER


def test_an_idle_launcher_run_leaves_the_holds_record_to_the_next_run_with_work(stack: Stack, calls):
    """A hold whose time has passed is dropped by the next run that has a job to place (that
    run reads the record before it places any); an idle run neither reads nor rewrites it, and
    the queue view ignores a past hold as the launcher does."""
    past = format_utc(stack.clock.now() - timedelta(minutes=1))
    stack.store.put_record(RecordKind.HOLDS, HOLDS_KEY, {"Holds": {"ml.g5.xlarge": {"Until": past, "Active": 0}}})
    calls.clear()
    stack.launch()
    assert calls == IDLE_LAUNCHER
    assert stack.store.get_record(RecordKind.HOLDS, HOLDS_KEY)["Holds"]

    job = stack.submit("bert")
    calls.clear()
    report = stack.launch()
    assert report["launched"] == 1 and stack.store.get(job.job_id).attempts
    assert ("dynamodb", "GetItem", f"{RecordKind.HOLDS.value}#{HOLDS_KEY}") in calls
    assert stack.store.get_record(RecordKind.HOLDS, HOLDS_KEY)["Holds"] == {}


def test_an_idle_monitor_sweep_reads_the_active_jobs_its_cursor_the_outbox_and_the_due_retries(stack: Stack, calls):
    """One SageMaker call since the orphan reaper (issue 21): ListTrainingJobs of what was
    created since its cursor, one page, nothing to read or stop; the cursor record is read once
    for both cursors and not written."""
    stack.sweep()
    calls.clear()
    report = stack.sweep()
    assert report["observed"] == 0 and report["orphans_listed"] == 0
    assert calls == [
        ACTIVE,
        ("dynamodb", "GetItem", f"{RecordKind.CURSOR.value}#monitor-sweep"),
        ("sagemaker", "ListTrainingJobs", ""),
        ("dynamodb", "Query", "Outbox"),
        QUEUE,
    ]


def test_a_monitor_sweep_after_a_job_ran_lists_nothing_before_its_cursor(stack: Stack, calls):
    """The reaper's cursor passes the training jobs it judged: once the job has ended and its
    attempt is older than the margin, a sweep is as idle as one that never saw a job."""
    job = stack.submit("bert")
    stack.launch()
    for _ in range(4):
        stack.clock.advance(3600)  # the stand-in ends it; the sweeps see it end and tell it
        stack.sweep()
    assert stack.store.get(job.job_id).is_terminal
    calls.clear()
    report = stack.sweep()
    assert report["orphans_listed"] == 0
    assert calls == [
        ACTIVE,
        ("dynamodb", "GetItem", f"{RecordKind.CURSOR.value}#monitor-sweep"),
        ("sagemaker", "ListTrainingJobs", ""),
        ("dynamodb", "Query", "Outbox"),
        QUEUE,
    ]


_IDLE_RUN = """
import json, os, sys
from moto import mock_aws

with mock_aws():
    import botocore.session
    from infra.template import create_jobs_table

    create_jobs_table(botocore.session.get_session().create_client("dynamodb", region_name="us-east-1"), "trainbot-jobs")
    before = set(sys.modules)
    import importlib

    handler = importlib.import_module(sys.argv[1]).handler

    class Context:
        function_name, memory_limit_in_mb, aws_request_id = "trainbot-test", 512, "req-1"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:trainbot-test"

        def get_remaining_time_in_millis(self):
            return 60_000

    handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, Context())
    print("LOADED " + json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("handler", ["backend.entrypoints.launcher", "backend.entrypoints.monitor"])
def test_an_idle_run_imports_no_pydantic_and_builds_no_model(handler):
    """An idle run validates no job, so its cold start imports neither pydantic nor a model
    (their import and definitions were about 70 ms of a first run's CPU): the code on its path
    imports the domain's words from backend.domain.terms and the models where a job is read or
    written. Everything wired as in AWS: Slack, SNS, list prices, team budgets."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "SLACK_", "TRAINBOT_", "JOBS_", "NOTIFY_"))}
    env.update(
        JOBS_TABLE_NAME="trainbot-jobs", NOTIFY_TOPIC_ARN="arn:aws:sns:us-east-1:123456789012:t", SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="s", TRAINBOT_PRICE_LIST="on", TRAINBOT_TEAM_BUDGETS="nlp=10", TRAINBOT_LAUNCHER_FUNCTION="trainbot-launcher",
        AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run([sys.executable, "-c", _IDLE_RUN, handler], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("LOADED "))[len("LOADED ") :])
    assert "backend.services.launcher" in loaded or "backend.services.monitor" in loaded  # it ran
    assert [m for m in loaded if m.split(".")[0] in ("pydantic", "pydantic_core")] == []
    assert [m for m in loaded if m in ("backend.domain.model", "backend.domain.history", "backend.domain.base")] == []
