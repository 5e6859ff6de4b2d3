"""Stats, export and retention against the jobs table (moto, created from template.yaml):
stats read only the window asked for, through the ByDay index, never a Scan."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest

from backend.adapters.dynamo import DynamoJobStore
from backend.domain.model import Owner
from backend.domain.status import JobStatus
from backend.services import export, stats
from tests.conftest import make_job
from tests.stats_history import DAY, EXPECTED, HOUR, MIN, NOW, known_history, seed

S = JobStatus


def _many(count: int, first: object, spacing: timedelta, prefix: str):
    return [make_job(f"{prefix}{i}", now=first + i * spacing, job_id=f"{prefix}-{i:05d}") for i in range(count)]


def test_stats_read_only_the_jobs_in_the_window_however_much_history_the_table_holds(store, dynamodb, jobs_table):
    window_start = NOW - 7 * DAY
    # 2,000 jobs from 60 to 8 days ago, 20 earlier on the window's first day (same ByDay
    # partition, before its start), and 50 inside the window.
    seed(dynamodb, jobs_table, _many(2000, NOW - 60 * DAY, timedelta(minutes=37), "old"))
    seed(dynamodb, jobs_table, _many(20, window_start - 2 * HOUR, MIN, "edge"))
    seed(dynamodb, jobs_table, _many(50, window_start + MIN, 3 * HOUR, "new"))

    store.metrics.reset()
    result = stats.collect(store, None, 7, None, NOW)

    assert result.total == 50
    # The ByDay index projects keys only: 50 index entries, then those 50 items by id.
    assert store.metrics.items_read == 2 * 50
    assert store.metrics.calls["query"] == len(result.window.days) == 8  # one per day touched
    assert store.metrics.calls["scan"] == 0

    # Half as much old history again: the same cost.
    seed(dynamodb, jobs_table, _many(1000, NOW - 120 * DAY, timedelta(minutes=37), "older"))
    store.metrics.reset()
    assert stats.collect(store, None, 7, None, NOW).total == 50
    assert store.metrics.items_read == 2 * 50

    # A shorter window reads less: the cost follows the window.
    store.metrics.reset()
    one_day = stats.collect(store, None, 1, None, NOW)
    assert one_day.total == store.metrics.items_read / 2 == 2  # the new jobs of the last 24 h
    assert store.metrics.calls["query"] == 2


def test_stats_through_the_store_match_the_known_answers_and_filter_by_owner_and_preset(store, dynamodb, jobs_table):
    history = known_history()
    seed(dynamodb, jobs_table, history)
    extra = make_job("other", user="U2", now=NOW - 2 * HOUR, preset="nlp")
    seed(dynamodb, jobs_table, [extra])

    everyone = stats.collect(store, None, 7, None, NOW)
    assert everyone.total == EXPECTED["total"] + 1
    assert {k: v for k, v in everyone.retries_by_cause.items() if v} == EXPECTED["retries"]
    assert everyone.instance_hours == pytest.approx(EXPECTED["instance_hours"])

    mine = stats.collect(store, Owner(team_id="T1", user_id="U1"), 7, None, NOW)
    assert mine.total == EXPECTED["total"] and mine.scope == "U1"
    assert mine.success_rate == pytest.approx(EXPECTED["success_rate"])
    by_user = stats.collect(store, "U2", 7, "nlp", NOW)
    assert by_user.total == 1 and by_user.by_status["New"] == 1 and by_user.scope == "U2, preset nlp"


def test_chart_png_is_one_call_from_the_store(store, dynamodb, jobs_table):
    from backend.services.chart import DPI, WIDTH_INCHES, chart_png, png_size

    seed(dynamodb, jobs_table, known_history())
    png = chart_png(store, days=7, now=NOW)
    assert png_size(png)[0] == round(WIDTH_INCHES * DPI)


def test_export_writes_one_flat_row_per_job_created_since_as_csv_and_jsonl(store, dynamodb, jobs_table):
    seed(dynamodb, jobs_table, known_history())

    out = io.StringIO()
    assert export.export(store, NOW - 7 * DAY, NOW, out, "csv") == 6
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["name"] for r in table] == ["a", "b", "c", "d", "f", "e"]  # by creation time
    b = table[1]
    assert (b["status"], b["instance_count"], b["retries"], b["retry_causes"]) == ("Completed", "2", "1", "capacity:1")
    assert float(b["queue_wait_seconds"]) == 1860 and float(b["instance_hours"]) == 1.0
    assert b["ended_at"] and table[5]["first_launched_at"] == ""  # e never launched

    store.metrics.reset()
    lines = io.StringIO()
    assert export.export(store, NOW - 5 * HOUR, NOW, lines, "jsonl") == 1
    record = json.loads(lines.getvalue())
    assert set(record) == set(export.FIELDS) and record["name"] == "e" and record["queue_wait_seconds"] is None
    assert store.metrics.items_read == 2  # only the window: its one index entry, its one item

    with pytest.raises(ValueError):
        export.write([], io.StringIO(), "xlsx")


def _raw(dynamodb, table: str, job_id: str) -> dict:
    return dynamodb.get_item(TableName=table, Key={"JobId": {"S": job_id}})["Item"]


def test_with_retention_a_finished_job_gets_expires_at_and_loses_it_when_retried(dynamodb, jobs_table):
    store = DynamoJobStore(dynamodb, jobs_table, sleep=lambda _s: None, retention_days=30)
    job = store.register(make_job("kept", now=NOW)).job
    assert "ExpiresAt" not in _raw(dynamodb, jobs_table, job.job_id)

    ended = NOW + HOUR
    job = store.transition(job, S.FAILED, at=ended, reason="bad image").job
    expires = _raw(dynamodb, jobs_table, job.job_id)["ExpiresAt"]
    assert int(expires["N"]) == int((ended + 30 * DAY).timestamp())

    job = store.transition(job, S.RETRYING, at=ended + MIN, reason="retry requested").job
    assert "ExpiresAt" not in _raw(dynamodb, jobs_table, job.job_id)
    assert store.get(job.job_id).status is S.RETRYING  # the attribute never reaches the model


def test_without_retention_nothing_expires(store, dynamodb, jobs_table):
    job = store.register(make_job("forever", now=NOW)).job
    store.transition(job, S.STOPPED, at=NOW + MIN, reason="stopped")
    assert "ExpiresAt" not in _raw(dynamodb, jobs_table, job.job_id)


def test_retention_comes_from_the_settings_through_the_composition_root(dynamodb, jobs_table):
    from backend.bootstrap import build
    from backend.config import Settings

    settings = Settings.from_env({"JOBS_TABLE_NAME": jobs_table, "TRAINBOT_RETENTION_DAYS": "14"})
    container = build(settings, dynamodb=dynamodb, notifiers=lambda _store: [])
    assert container.store.retention_days == 14
    assert Settings.from_env({"JOBS_TABLE_NAME": jobs_table}).retention_days == 0
