"""What a submission may cost: instance-hours, and money where a price is known.

Pure: no I/O beyond reading the price table kept next to this module (``prices.json``, with
its source and date; never the network). The estimate is an upper bound: a job is billed at
most ``InstanceCount x MaxRuntimeInSeconds`` per attempt (spot's ``MaxWaitTimeInSeconds``
includes waiting, which is not billed), and a sweep is the sum of its jobs. Retries are not
in it: usage against a budget is counted from what actually ran (``BillableTimeInSeconds``),
see :mod:`backend.services.budget`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path

from backend.domain.model import JobArgs

PRICES_FILE = Path(__file__).with_name("prices.json")


@dataclass(frozen=True)
class PriceTable:
    """Price per instance-hour by instance type, and where the numbers come from."""

    prices: Mapping[str, float] = field(default_factory=dict)
    currency: str = "USD"
    source: str = ""
    as_of: str = ""

    def price(self, instance_type: str) -> float | None:
        return self.prices.get(instance_type)

    def overridden(self, overrides: Mapping[str, float]) -> PriceTable:
        """This table with ``overrides`` (configuration) taking precedence."""
        if not overrides:
            return self
        return PriceTable({**self.prices, **overrides}, self.currency, self.source + " (with configured overrides)", self.as_of)


@cache
def repo_prices() -> PriceTable:
    """The price table kept in the repository (read once per process)."""
    data = json.loads(PRICES_FILE.read_text())
    return PriceTable(
        prices={str(k): float(v) for k, v in data["prices"].items()},
        currency=str(data.get("currency", "USD")),
        source=str(data.get("source", "")),
        as_of=str(data.get("as_of", "")),
    )


def job_instance_hours(args: JobArgs) -> float:
    """The most one attempt of ``args`` can bill: instances x max run time, in hours."""
    return args.instance_count * args.StoppingCondition.MaxRuntimeInSeconds / 3600


@dataclass(frozen=True)
class Estimate:
    """An upper bound on what a submission (one job or a sweep) may use."""

    jobs: int
    instance_hours: float
    by_type: dict[str, float]  # instance type -> instance-hours
    money: float | None  # None: some type has no price
    currency: str
    unpriced: tuple[str, ...] = ()  # the instance types the table has no price for
    as_of: str = ""

    def __add__(self, other: Estimate) -> Estimate:
        by_type = dict(self.by_type)
        for kind, hours in other.by_type.items():
            by_type[kind] = by_type.get(kind, 0.0) + hours
        money = None if self.money is None or other.money is None else self.money + other.money
        unpriced = tuple(sorted(set(self.unpriced) | set(other.unpriced)))
        return Estimate(self.jobs + other.jobs, self.instance_hours + other.instance_hours, by_type, money, self.currency, unpriced, self.as_of)


def estimate(jobs: Iterable[JobArgs], prices: PriceTable | None = None) -> Estimate:
    """The estimate of running each of ``jobs`` once, to its max run time."""
    prices = prices if prices is not None else repo_prices()
    by_type: dict[str, float] = {}
    count = 0
    for args in jobs:
        count += 1
        by_type[args.instance_type] = by_type.get(args.instance_type, 0.0) + job_instance_hours(args)
    unpriced = tuple(sorted(t for t in by_type if prices.price(t) is None))
    money = None if unpriced else sum(hours * (prices.price(t) or 0.0) for t, hours in by_type.items())
    return Estimate(count, sum(by_type.values()), by_type, money, prices.currency, unpriced, prices.as_of)


def hours_text(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:,.2f}"


def money_text(amount: float, currency: str = "USD") -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{amount:,.2f}" if amount < 1000 else f"{symbol}{amount:,.0f}"


def describe(est: Estimate) -> str:
    """One line for people: ``≤ 48.0 instance-hours (≈ $1,809 at list prices of 2025-01)``."""
    text = f"≤ {hours_text(est.instance_hours)} instance-hours"
    if est.jobs > 1:
        text += f" over {est.jobs:,} jobs"
    if est.money is not None:
        text += f" (≤ {money_text(est.money, est.currency)} at list prices" + (f" of {est.as_of})" if est.as_of else ")")
    elif est.unpriced:
        text += f" (no price configured for {', '.join(est.unpriced)})"
    return text


# --- weeks -------------------------------------------------------------------------------------


def iso_week(at: datetime) -> str:
    """The ISO week ``at`` falls in, e.g. ``2026-W48`` (budgets are per week, Monday to Sunday, UTC)."""
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"
