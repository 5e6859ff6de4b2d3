"""AWS's Price List Query API (``pricing:GetProducts``): SageMaker Training's on-demand prices
per instance-hour in one region.

The API answers only at a few endpoints (us-east-1, eu-central-1, ap-south-1); the region a
product is priced for is a filter (``regionCode``), not the endpoint's. Each ``PriceList``
entry is a JSON *string* (product attributes and its terms); the Price List's vocabulary
(``component``, ``instanceName``, ``OnDemand`` terms, ``pricePerUnit``) stays in this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import BackendUnavailable

SERVICE_CODE = "AmazonSageMaker"
# Where the Price List Query API answers (AWS Billing User Guide, "Price List Query API
# endpoints"); any region's prices can be asked at any of them.
ENDPOINT_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
_MAX_PAGES = 50  # 100 products a page: SageMaker Training has a few hundred in a region


def endpoint_region(region: str) -> str:
    """The Price List endpoint nearest to a stack in ``region``."""
    if region.startswith("eu-") or region.startswith("me-") or region.startswith("af-"):
        return "eu-central-1"
    if region.startswith("ap-"):
        return "ap-south-1"
    return "us-east-1"


def training_filters(region: str) -> list[dict[str, str]]:
    """GetProducts filters: SageMaker Training instances priced for ``region``."""
    return [
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
        {"Type": "TERM_MATCH", "Field": "component", "Value": "Training"},
    ]


def hourly_prices(price_list: Iterable[str], currency: str = "USD") -> dict[str, float]:
    """Instance type -> on-demand price per hour, from GetProducts' ``PriceList`` strings.
    Products that are not an ML instance priced by the hour (storage, data, a free tier's
    zero) are left out; so is anything unreadable."""
    prices: dict[str, float] = {}
    for entry in price_list:
        try:
            product = json.loads(entry)
        except (TypeError, ValueError):
            continue
        if not isinstance(product, dict):
            continue
        attributes = (product.get("product") or {}).get("attributes") or {}
        name = str(attributes.get("instanceName") or attributes.get("instanceType") or "")
        name = name.removesuffix("-Training")
        if not name.startswith("ml."):
            continue
        price = _on_demand_hourly(product.get("terms") or {}, currency)
        if price:
            prices[name] = price
    return prices


def _on_demand_hourly(terms: dict[str, Any], currency: str) -> float | None:
    for term in (terms.get("OnDemand") or {}).values():
        for dimension in (term.get("priceDimensions") or {}).values():
            if str(dimension.get("unit", "")).lower() not in {"hrs", "hr", "hour", "hours"}:
                continue
            try:
                return float((dimension.get("pricePerUnit") or {})[currency])
            except (KeyError, TypeError, ValueError):
                continue
    return None


class PriceList:
    """SageMaker Training's list prices in one region, from the Price List Query API."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._page_size = 100  # GetProducts' maximum

    def training_prices(self, region: str) -> dict[str, float]:
        """Every Training instance type's on-demand USD price per hour in ``region`` (paged);
        BackendUnavailable when the API cannot answer."""
        prices: dict[str, float] = {}
        request: dict[str, Any] = {"ServiceCode": SERVICE_CODE, "Filters": training_filters(region), "FormatVersion": "aws_v1", "MaxResults": self._page_size}
        for _ in range(_MAX_PAGES):
            try:
                answer = self._client.get_products(**request)
            except (ClientError, BotoCoreError) as exc:
                raise BackendUnavailable(f"Price List GetProducts: {exc}") from exc
            prices.update(hourly_prices(answer.get("PriceList") or []))
            token = answer.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
        return prices
