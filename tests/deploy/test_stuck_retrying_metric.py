"""JobsStuckRetrying, the metric template.yaml's StuckRetryingAlarm watches: the monitor's sweep
counts Retrying jobs, due, whose capacity wait is past the max wait plus one backoff."""

from __future__ import annotations

import json

from tests.harness import Stack


def _emitted(out: str, name: str) -> list[float]:
    values = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            record = json.loads(line)
            if name in record:
                values.extend(record[name] if isinstance(record[name], list) else [record[name]])
    return values


def test_the_sweep_reports_retrying_jobs_the_launcher_left_past_the_capacity_max_wait(moto_aws, monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    stack = Stack(
        capacity={"ml.m5.large": 1},
        duration=36_000.0,
        env={"TRAINBOT_CAPACITY_MAX_WAIT_SECONDS": "600", "TRAINBOT_RETRY_MAX_SECONDS": "60", "TRAINBOT_RETRY_BASE_SECONDS": "10"},
    )
    try:
        first = stack.submit("first", hp={"instance": "ml.m5.large"})
        waiting = stack.submit("waiting", hp={"instance": "ml.m5.large"})
        stack.launch()  # the second is refused for quota: Retrying, its capacity wait begins
        assert stack.store.get(waiting.job_id).status.value == "Retrying"
        assert stack.store.get(first.job_id).status.value == "Launched"
        capsys.readouterr()

        stack.clock.advance(300)
        stack.sweep()
        assert _emitted(capsys.readouterr().out, "JobsStuckRetrying") == [0.0]

        stack.clock.advance(600)  # the launcher has not run since: past 600 s + one 60 s backoff
        stack.sweep()
        assert _emitted(capsys.readouterr().out, "JobsStuckRetrying") == [1.0]

        stack.launch()  # the launcher runs again: the policy fails the job, nothing is stuck
        assert stack.store.get(waiting.job_id).status.value == "Failed"
        stack.sweep()
        assert _emitted(capsys.readouterr().out, "JobsStuckRetrying") == [0.0]
    finally:
        stack.close()
