"""Trainbot's metrics object: Powertools' CloudWatch EMF metrics, quiet when turned off.

With ``POWERTOOLS_METRICS_DISABLED`` (local mode, the tests) Powertools publishes nothing at a
flush, but keeps every metric added, so the set grows run after run; and once one metric holds
100 values it prints them as an EMF line anyway (``add_metric`` does not look at the switch),
and an empty flush warns. Here a disabled metric is not kept at all: nothing piles up, nothing
is printed, nothing warns. Enabled, it is Powertools' own behaviour."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

NAMESPACE = "Trainbot"
SERVICE = "trainbot"


class _Provider(AmazonCloudWatchEMFProvider):
    def add_metric(self, name: str, unit: Any, value: float, resolution: Any = 60) -> None:
        if is_metrics_disabled():
            return
        super().add_metric(name=name, unit=unit, value=value, resolution=resolution)

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        if is_metrics_disabled():
            self.clear_metrics()
            return
        super().flush_metrics(raise_on_empty_metrics=raise_on_empty_metrics)


def trainbot_metrics() -> Metrics:
    return Metrics(namespace=NAMESPACE, service=SERVICE, provider=_Provider(namespace=NAMESPACE, service=SERVICE))
