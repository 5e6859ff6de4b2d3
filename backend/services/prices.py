"""Where estimates get their prices: AWS's list prices, fetched daily, or the built-in table.

The monitor's sweep asks :meth:`PriceBook.refresh` once per sweep; at most once a day (UTC) it
reads SageMaker Training's on-demand prices for the stack's region from the Price List API
(one GetProducts page per hundred instance types) into the small record ``prices#<region>``
(``List.latest``: ``On`` the date fetched, ``Prices`` type -> price as a decimal string). The
bot and the CLI read that record (at most once an hour per process) for their estimates;
with no record, or list prices off, they use the built-in table (``prices.json``, the offline
fallback). ``TRAINBOT_INSTANCE_PRICES`` overrides either. Each estimate says which it used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from backend.domain.cost import LIST_PRICE, PriceTable
from backend.domain.records import RecordKind
from backend.errors import BackendUnavailable, StoreUnavailable
from backend.ports import PriceSource, RecordStore

logger = Logger(service="trainbot", child=True)

PRICES = RecordKind.PRICES
REREAD_AFTER = timedelta(hours=1)  # how long a process trusts the record it read
RETRY_AFTER = timedelta(hours=1)  # after a failed fetch, the next sweeps wait this long


class PriceBook:
    """The price table estimates use, and its daily refresh from the Price List API."""

    def __init__(
        self,
        records: RecordStore,
        *,
        region: str,
        builtin: PriceTable,
        overrides: Mapping[str, float],
        clock: Callable[[], datetime],
        source: PriceSource | None = None,
        use_list_prices: bool = True,
    ) -> None:
        self._records = records
        self._region = region
        self._builtin = builtin
        self._overrides = dict(overrides)
        self._clock = clock
        self._source = source
        self._use_list = use_list_prices
        self._table: PriceTable | None = None
        self._read_at: datetime | None = None
        self._fetched_on = ""  # the day this process knows the record is fresh for
        self._next_try: datetime | None = None

    def table(self) -> PriceTable:
        """List prices when a refresh has stored some, else the built-in table; overrides win."""
        now = self._clock()
        if self._table is None or self._read_at is None or now - self._read_at >= REREAD_AFTER:
            self._table = self._read().overridden(self._overrides)
            self._read_at = now
        return self._table

    def _read(self) -> PriceTable:
        if not self._use_list:
            return self._builtin
        try:
            record = self._records.get_record(PRICES, self._region) or {}
        except StoreUnavailable:
            return self._builtin
        latest: dict[str, Any] = (record.get("List") or {}).get("latest") or {}
        prices = _decimal_strings(latest.get("Prices"))
        if not prices:
            return self._builtin
        return PriceTable(
            prices, str(latest.get("Currency", "USD")), f"AWS Price List API, {self._region}", str(latest.get("On", "")), kind=LIST_PRICE
        )

    def refresh(self) -> bool:
        """Fetch today's list prices unless the record has them already (one GetItem, at most
        once a day per process); whether they were fetched now. A failure keeps what is there
        (yesterday's list prices or the built-in table) and waits an hour before trying again."""
        if self._source is None:
            return False
        now = self._clock()
        today = now.date().isoformat()
        if self._fetched_on == today or (self._next_try is not None and now < self._next_try):
            return False
        try:
            record = self._records.get_record(PRICES, self._region) or {}
            if ((record.get("List") or {}).get("latest") or {}).get("On") == today:
                self._fetched_on = today
                return False
            prices = self._source.training_prices(self._region)
            if not prices:
                raise BackendUnavailable(f"the Price List has no SageMaker Training prices for {self._region}")
            entry = {"On": today, "Currency": "USD", "Prices": {k: f"{v:.6f}" for k, v in sorted(prices.items())}}
            self._records.set_record_entry(PRICES, self._region, "List", "latest", entry)
        except (BackendUnavailable, StoreUnavailable) as exc:
            self._next_try = now + RETRY_AFTER
            logger.warning("list prices not refreshed; estimates keep their prices", extra={"error": str(exc)})
            return False
        self._fetched_on = today
        self._table = None  # this process's next estimate reads them
        logger.info("list prices refreshed", extra={"region": self._region, "instance_types": len(prices)})
        return True


def _decimal_strings(value: Any) -> dict[str, float]:
    prices: dict[str, float] = {}
    for name, text in (value or {}).items() if isinstance(value, dict) else ():
        try:
            price = float(text)
        except (TypeError, ValueError):
            continue
        if price > 0:
            prices[str(name)] = price
    return prices
