"""The handlers' EMF metrics: what the dashboard and alarms in template.yaml read."""

from __future__ import annotations

import json

import pytest

from tests.harness import Stack


@pytest.fixture
def stack(moto_aws, monkeypatch):
    from backend.entrypoints.runtime import metrics

    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # With metrics disabled (the rest of the suite), Powertools never flushes: drop what the
    # shared Metrics object gathered in earlier tests of this process.
    metrics.clear_metrics()
    built = Stack()
    yield built
    built.close()


def emitted(capsys) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for line in capsys.readouterr().out.splitlines():
        if line.startswith('{"_aws"'):
            record = json.loads(line)
            for metric in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values.setdefault(metric["Name"], []).extend(record[metric["Name"]] if isinstance(record[metric["Name"]], list) else [record[metric["Name"]]])
    return values


def test_launcher_and_monitor_emit_launches_lag_retries_outcomes_and_notifications(stack, capsys):
    stack.submit("ok")
    stack.submit("capacity", hp={"trainbot_standin_outcome": "CapacityError", "trainbot_standin_outcome_attempts": "1"})
    stack.container.dispatcher.take_totals()  # the submissions' own "New" notifications
    capsys.readouterr()
    stack.clock.advance(90)
    stack.launch()
    launcher = emitted(capsys)
    assert launcher["JobsLaunched"] == [2.0]
    assert launcher["LauncherLagSeconds"][0] >= 90
    assert launcher["NotificationsSent"] == [0.0]  # "New" and "Launched" wait for a later round (backend.domain.notice)
    assert launcher["NotificationFailures"] == [0.0]

    stack.clock.advance(30)
    stack.deliver_events()
    monitor = emitted(capsys)
    assert sum(monitor["JobsRetried_capacity"]) == 1
    for _ in range(20):
        stack.tick(60)
    monitor = emitted(capsys)
    assert sum(monitor["JobsCompleted"]) == 2
