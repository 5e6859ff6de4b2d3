"""Estimates priced from AWS's Price List (issue 22, "Prices with a source"): the monitor's
sweep fetches SageMaker Training's on-demand prices for the stack's region once a day from the
Price List stand-in (GetProducts, answered in the documented shape), and every estimate says
where its prices came from: the list price of a day, a price override, or the built-in table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from moto import mock_aws

from backend.domain.cost import describe, repo_prices
from backend.domain.records import RecordKind
from infra.local.standins.pricing import PriceListStandIn
from tests.harness import Stack, job_request


@pytest.fixture
def price_list(monkeypatch):
    standin = PriceListStandIn()
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", standin.start())
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture
def stack(request, price_list):
    with mock_aws():
        built = Stack(env={"TRAINBOT_PRICE_LIST": "on", **getattr(request, "param", {})})
        try:
            yield built
        finally:
            built.close()


def _estimate(stack, instance: str) -> str:
    return describe(stack.container.cost_guard.estimate([job_request(instance=instance, max_runtime="3600")]))


def test_the_sweep_fetches_training_list_prices_once_a_day_and_estimates_name_their_date(stack, price_list):
    builtin = f"by built-in table of {repo_prices().as_of}"
    assert _estimate(stack, "ml.g5.xlarge").endswith(f"(≤ ${repo_prices().price('ml.g5.xlarge'):.2f} {builtin})")
    assert "no price configured for ml.trn1.32xlarge" in _estimate(stack, "ml.trn1.32xlarge")

    stack.sweep()
    today = stack.clock.now().date().isoformat()
    fetched = price_list.calls
    assert fetched >= 1
    record = stack.store.get_record(RecordKind.PRICES, "us-east-1")
    assert record["List"]["latest"]["On"] == today
    # Training in us-east-1 only: not Hosting's price, not another region's.
    assert _estimate(stack, "ml.g5.xlarge") == f"≤ 1.00 instance-hours (≤ $1.41 by list price of {today})"
    assert _estimate(stack, "ml.trn1.32xlarge") == f"≤ 1.00 instance-hours (≤ $24.73 by list price of {today})"

    stack.sweep()
    stack.clock.advance(3600.0)
    stack.sweep()
    assert price_list.calls == fetched  # once a day

    stack.clock.advance(24 * 3600.0)
    stack.sweep()
    assert price_list.calls > fetched
    assert stack.store.get_record(RecordKind.PRICES, "us-east-1")["List"]["latest"]["On"] == (stack.clock.now()).date().isoformat()


@pytest.mark.parametrize("stack", [{"TRAINBOT_INSTANCE_PRICES": "ml.p5.48xlarge=98.32"}], indirect=True)
def test_with_the_price_list_down_estimates_keep_the_built_in_table_and_say_so(stack, price_list):
    price_list.down = True
    report = stack.sweep()  # the sweep itself is not hurt
    assert "observed" in report
    assert stack.store.get_record(RecordKind.PRICES, "us-east-1") is None
    assert _estimate(stack, "ml.g5.xlarge").endswith(f"by built-in table of {repo_prices().as_of})")
    assert _estimate(stack, "ml.p5.48xlarge").endswith("(≤ $98.32 by price override)")

    calls = price_list.calls
    stack.clock.advance(600.0)
    stack.sweep()
    assert price_list.calls == calls  # a failed fetch waits an hour before the next try
    price_list.down = False
    stack.clock.advance(timedelta(hours=1).total_seconds())
    stack.sweep()
    assert _estimate(stack, "ml.g5.xlarge").endswith(f"by list price of {stack.clock.now().date().isoformat()})")
    assert _estimate(stack, "ml.p5.48xlarge").endswith("by price override)")  # an override still wins
