"""Metrics turned off (POWERTOOLS_METRICS_DISABLED, as local mode runs) print nothing however
many runs add them: Powertools alone keeps them and prints an EMF line once a metric has 100
values (issue 24: raw `{"_aws": …}` blobs in `./dev local`'s terminal). On, they are published."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from backend.entrypoints import runtime


def _runs(count: int) -> None:
    @runtime.metrics.log_metrics
    def handler(event, context):
        runtime.metrics.add_metric(name="JobsLaunched", unit=MetricUnit.Count, value=1)

    for _ in range(count):
        handler({}, None)


def test_disabled_metrics_print_nothing_after_many_runs(monkeypatch, capsys, recwarn):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    runtime.metrics.clear_metrics()

    _runs(150)  # a launcher every 0.5 s: 75 s of `./dev local`

    out, err = capsys.readouterr()
    assert '"_aws"' not in out + err
    assert not [w for w in recwarn if "No application metrics" in str(w.message)]


def test_enabled_metrics_are_published_once_per_run(monkeypatch, capsys):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    runtime.metrics.clear_metrics()

    _runs(2)

    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert len(lines) == 2 and all('"JobsLaunched":[1.0]' in line for line in lines)
