"""What a submission may cost: instance-hours, and money where a price is known.

Pure: no I/O beyond reading the built-in price table kept next to this module (``prices.json``,
with its source and date: the offline fallback). List prices come from AWS's Price List API,
fetched daily into a record (:mod:`backend.services.prices`); every estimate says which
source and date its prices are from. The estimate is an upper bound: a job is billed at
most ``InstanceCount x MaxRuntimeInSeconds`` per attempt (spot's ``MaxWaitTimeInSeconds``
includes waiting, which is not billed), and a sweep is the sum of its jobs. Retries are not
in it: usage against a budget is counted from what actually ran (``BillableTimeInSeconds``),
see :mod:`backend.services.budget`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.domain.model import Job, JobArgs


PRICES_FILE = Path(__file__).with_name("prices.json")


# Where a price came from, as an estimate says it.
LIST_PRICE = "list"  # AWS's Price List API, fetched daily into the record prices#<region>
BUILT_IN = "built-in"  # prices.json, the offline fallback


@dataclass(frozen=True)
class PriceTable:
    """Price per instance-hour by instance type, and where the numbers come from: AWS's list
    prices of a day, or the built-in table of a month; ``overrides`` (configuration) win."""

    prices: Mapping[str, float] = field(default_factory=dict)
    currency: str = "USD"
    source: str = ""
    as_of: str = ""
    kind: str = BUILT_IN
    overrides: frozenset[str] = frozenset()

    def price(self, instance_type: str) -> float | None:
        return self.prices.get(instance_type)

    def origin(self, instance_type: str) -> str:
        """Which source (and its date) the price of ``instance_type`` is from."""
        if instance_type in self.overrides:
            return "price override"
        what = "list price" if self.kind == LIST_PRICE else "built-in table"
        return f"{what} of {self.as_of}" if self.as_of else what

    def overridden(self, overrides: Mapping[str, float]) -> PriceTable:
        """This table with ``overrides`` (configuration) taking precedence."""
        if not overrides:
            return self
        return PriceTable(
            {**self.prices, **overrides}, self.currency, self.source, self.as_of, self.kind, self.overrides | frozenset(overrides)
        )


@cache
def repo_prices() -> PriceTable:
    """The built-in price table kept in the repository (read once per process): the fallback
    when no list prices were fetched."""
    data = json.loads(PRICES_FILE.read_text())
    return PriceTable(
        prices={str(k): float(v) for k, v in data["prices"].items()},
        currency=str(data.get("currency", "USD")),
        source=str(data.get("source", "")),
        as_of=str(data.get("as_of", "")),
        kind=BUILT_IN,
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
    sources: tuple[str, ...] = ()  # where the prices used came from ("list price of 2026-12-07", …)

    def __add__(self, other: Estimate) -> Estimate:
        by_type = dict(self.by_type)
        for kind, hours in other.by_type.items():
            by_type[kind] = by_type.get(kind, 0.0) + hours
        money = None if self.money is None or other.money is None else self.money + other.money
        unpriced = tuple(sorted(set(self.unpriced) | set(other.unpriced)))
        sources = tuple(sorted(set(self.sources) | set(other.sources)))
        return Estimate(
            self.jobs + other.jobs, self.instance_hours + other.instance_hours, by_type, money, self.currency, unpriced, self.as_of, sources
        )


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
    sources = tuple(sorted({prices.origin(t) for t in by_type if prices.price(t) is not None}))
    return Estimate(count, sum(by_type.values()), by_type, money, prices.currency, unpriced, prices.as_of, sources)


def hours_text(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:,.2f}"


def money_text(amount: float, currency: str = "USD") -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{amount:,.2f}" if amount < 1000 else f"{symbol}{amount:,.0f}"


def describe(est: Estimate) -> str:
    """One line for people, saying where its prices came from:
    ``≤ 48.0 instance-hours (≤ $1,809 by list price of 2026-12-07)``, ``… by price override``,
    ``… by built-in table of 2025-01``."""
    text = f"≤ {hours_text(est.instance_hours)} instance-hours"
    if est.jobs > 1:
        text += f" over {est.jobs:,} jobs"
    if est.money is not None:
        text += f" (≤ {money_text(est.money, est.currency)}" + (f" by {' and '.join(est.sources)})" if est.sources else ")")
    elif est.unpriced:
        text += f" (no price configured for {', '.join(est.unpriced)})"
    return text


# --- weeks -------------------------------------------------------------------------------------


def iso_week(at: datetime) -> str:
    """The ISO week ``at`` falls in, e.g. ``2026-W48`` (budgets are per week, Monday to Sunday, UTC)."""
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


# --- spend: what ran, by user, team and instance type ------------------------------------------


@dataclass(frozen=True)
class SpendLine:
    """Billed instance-hours of one user, team or instance type, and their price (None: a type
    without a price is among them)."""

    name: str
    instance_hours: float
    money: float | None


@dataclass(frozen=True)
class Spend:
    """What the jobs of a window billed (``BillableTimeInSeconds x InstanceCount``), priced."""

    by_user: list[SpendLine]
    by_team: list[SpendLine]
    by_type: list[SpendLine]
    per_day: dict[str, dict[str, float]]  # day (attempt end) -> instance type -> instance-hours
    instance_hours: float
    money: float | None
    currency: str
    unpriced: list[str]

    def text(self) -> str:
        total = f"{hours_text(self.instance_hours)} instance-hours"
        if self.money is not None:
            total += f" ≈ {money_text(self.money, self.currency)}"
        return total


def _lines(hours: dict[str, float], money: dict[str, float | None]) -> list[SpendLine]:
    ordered = sorted(hours.items(), key=lambda kv: (-kv[1], kv[0]))
    return [SpendLine(name, value, money[name]) for name, value in ordered]


def spend(
    jobs: Iterable[Job],
    prices: PriceTable | None = None,
    *,
    team_of: Callable[[str], str] = lambda user: user,
    day_of: Callable[[datetime], str] = lambda at: at.date().isoformat(),
) -> Spend:
    """The billed spend of ``jobs``' attempts (pure). ``team_of`` names a user's team;
    ``day_of`` buckets an attempt by when it ended (the stats clamp it into their window)."""

    def billed() -> Iterator[tuple[str, str, str | None, float]]:
        for job in jobs:
            for attempt in job.attempts:
                if attempt.billable_seconds:
                    # A fallback attempt is billed at its own type's price.
                    day = day_of(attempt.ended_at) if attempt.ended_at is not None else None
                    yield job.owner.user_id, job.instance_type_of(attempt), day, attempt.billable_seconds * job.job_args.instance_count / 3600

    return spend_of_hours(billed(), prices, team_of=team_of)


def spend_of_hours(
    billed: Iterable[tuple[str | None, str, str | None, float]],
    prices: PriceTable | None = None,
    *,
    team_of: Callable[[str], str] = lambda user: user,
    per_day: Mapping[str, Mapping[str, float]] | None = None,
) -> Spend:
    """The spend of billed instance-hours given as ``(user, instance type, day or None, hours)``
    (what :func:`spend` reads off jobs, and the stats rollup's tallies keep; user None: not
    known, counted by type alone), priced; hours per
    day and type are those of the entries with a day, added to ``per_day`` (day -> type ->
    hours) when given."""
    prices = prices if prices is not None else repo_prices()
    hours: dict[str, dict[str, float]] = {"user": {}, "team": {}, "type": {}}
    money: dict[str, dict[str, float | None]] = {"user": {}, "team": {}, "type": {}}
    by_day: dict[str, dict[str, float]] = {day: dict(types) for day, types in (per_day or {}).items()}
    for user, kind, day, used in billed:
        price = prices.price(kind)
        cost = None if price is None else used * price
        groups = (("type", kind),) if user is None else (("user", user), ("team", team_of(user)), ("type", kind))
        for group, name in groups:
            hours[group][name] = hours[group].get(name, 0.0) + used
            before = money[group].get(name, 0.0)
            money[group][name] = None if before is None or cost is None else before + cost
        if day is not None:
            bucket = by_day.setdefault(day, {})
            bucket[kind] = bucket.get(kind, 0.0) + used
    by_type = _lines(hours["type"], money["type"])
    unpriced = sorted(line.name for line in by_type if line.money is None)
    total_money = None if unpriced else sum(line.money or 0.0 for line in by_type)
    return Spend(
        by_user=_lines(hours["user"], money["user"]),
        by_team=_lines(hours["team"], money["team"]),
        by_type=by_type,
        per_day=by_day,
        instance_hours=sum(hours["type"].values()),
        money=total_money,
        currency=prices.currency,
        unpriced=unpriced,
    )
