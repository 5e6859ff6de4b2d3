"""AWS Price List Query API stand-in: ``GetProducts`` for SageMaker's on-demand instances.

AWS JSON 1.1 like the real service: ``POST /`` with ``X-Amz-Target:
AWSPriceListService.GetProducts``; boto3 reaches it through ``AWS_ENDPOINT_URL_PRICING``. The
answer has the documented shape (tests/fixtures/pricing_get_products.json): ``FormatVersion``,
``NextToken`` while more pages remain, and ``PriceList``, a list of JSON *strings*, each a
product (``product.attributes``, ``sku``) with its ``terms.OnDemand`` price dimensions. Like
the real API it answers only at its endpoint regions (the request's SigV4 credential scope),
applies the documented filter types to the product attributes and pages at ``MaxResults`` (1-100).

The catalogue is SageMaker Training and Hosting instances in two regions. Its prices are
illustrative (the built-in table's, for the types it has, and ``ml.trn1.32xlarge``): local
mode shows where an estimate's prices come from, not what AWS charges today.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from infra.local.standins.serving import LocalServer

TARGET_PREFIX = "AWSPriceListService."
ENDPOINT_REGIONS = ("us-east-1", "eu-central-1", "ap-south-1")
LOCATIONS = {"us-east-1": "US East (N. Virginia)", "eu-west-1": "EU (Ireland)"}
# GetProducts' filter types (botocore's pricing model, FilterType); ANY_OF/NONE_OF take a
# comma-separated list of values.
FILTER_TYPES = {
    "TERM_MATCH": lambda have, want: have == want,
    "EQUALS": lambda have, want: have == want,
    "CONTAINS": lambda have, want: want in have,
    "ANY_OF": lambda have, want: have in [v.strip() for v in want.split(",")],
    "NONE_OF": lambda have, want: have not in [v.strip() for v in want.split(",")],
}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/pricing/aws4_request")


def _catalogue() -> dict[str, float]:
    """Training prices per hour in us-east-1: the built-in table's, plus types it lacks."""
    from backend.domain.cost import repo_prices

    return {**repo_prices().prices, "ml.trn1.32xlarge": 24.725, "ml.trn1.2xlarge": 1.5484}


def product(region: str, instance_type: str, component: str, price: float, published: str) -> str:
    """One PriceList entry, as the Price List serves it: a JSON string."""
    sku = hashlib.sha1(f"{region}/{instance_type}/{component}".encode()).hexdigest()[:16].upper()
    offer, rate = f"{sku}.JRTCKXETXF", f"{sku}.JRTCKXETXF.6YS6EN2CT7"
    usage = {"us-east-1": "USE1", "eu-west-1": "EU"}[region]
    document = {
        "product": {
            "productFamily": "ML Instance",
            "attributes": {
                "servicecode": "AmazonSageMaker",
                "servicename": "Amazon SageMaker",
                "location": LOCATIONS[region],
                "locationType": "AWS Region",
                "regionCode": region,
                "component": component,
                "instanceName": instance_type,
                "instanceType": f"{instance_type}-{component}",
                "usagetype": f"{usage}-{'Train' if component == 'Training' else 'Host'}:{instance_type}",
                "operation": "RunInstance",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonSageMaker",
        "terms": {
            "OnDemand": {
                offer: {
                    "priceDimensions": {
                        rate: {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": f"${price} per {component} {instance_type} hour in {LOCATIONS[region]}",
                            "appliesTo": [],
                            "rateCode": rate,
                            "beginRange": "0",
                            "pricePerUnit": {"USD": f"{price:.10f}"},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": published,
                    "offerTermCode": "JRTCKXETXF",
                    "termAttributes": {},
                }
            }
        },
        "version": published.replace("-", "").replace(":", "").replace("T", "")[:14],
        "publicationDate": published,
    }
    return json.dumps(document)


class PriceListStandIn:
    """GetProducts over HTTP, with a call count (``calls``) and an outage switch (``down``)."""

    def __init__(self, *, prices: dict[str, float] | None = None, published: str | None = None) -> None:
        published = published or datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
        catalogue = prices if prices is not None else _catalogue()
        self._products: list[tuple[dict[str, str], str]] = []
        for region, factor in (("us-east-1", 1.0), ("eu-west-1", 1.1)):
            for instance_type, price in sorted(catalogue.items()):
                for component, markup in (("Training", 1.0), ("Hosting", 1.2)):
                    entry = product(region, instance_type, component, round(price * factor * markup, 4), published)
                    self._products.append((json.loads(entry)["product"]["attributes"], entry))
        self.calls = 0
        self.down = False  # answer 503 ServiceUnavailable (an outage)
        self._lock = threading.Lock()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = standin.handle(self.headers.get("X-Amz-Target", ""), self.headers.get("Authorization", ""), body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = LocalServer(Handler, name="pricing-standin")

    def start(self) -> str:
        self._server.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def handle(self, target: str, authorization: str, body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls += 1
        if self.down:
            return 503, {"__type": "ServiceUnavailableException", "message": "Service Unavailable"}
        scope = _SCOPE.search(authorization)
        if scope is None or scope.group(1) not in ENDPOINT_REGIONS:
            region = scope.group(1) if scope else "?"
            return 400, {"__type": "UnrecognizedClientException", "message": f"the Price List API has no endpoint in {region}"}
        if target != TARGET_PREFIX + "GetProducts":
            return 400, {"__type": "UnknownOperationException", "message": f"Unknown operation {target!r}"}
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return 400, {"__type": "SerializationException", "message": "body is not JSON"}
        return self._get_products(request)

    def _get_products(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        service = request.get("ServiceCode")
        size = request.get("MaxResults", 100)
        if not isinstance(size, int) or not 1 <= size <= 100:
            return 400, {"__type": "InvalidParameterException", "message": "MaxResults must be between 1 and 100"}
        filters = request.get("Filters") or []
        for f in filters:
            if f.get("Type") not in FILTER_TYPES or not f.get("Field") or "Value" not in f:
                return 400, {"__type": "InvalidParameterException", "message": f"invalid filter {f!r}"}
        if not service:
            return 400, {"__type": "InvalidParameterException", "message": "ServiceCode is required"}
        if service != "AmazonSageMaker":
            return 400, {"__type": "NotFoundException", "message": f"this stand-in knows only AmazonSageMaker, not {service}"}
        matching = [
            entry
            for attributes, entry in self._products
            if all(FILTER_TYPES[f["Type"]](attributes.get(f["Field"], ""), str(f["Value"])) for f in filters if f["Field"] != "ServiceCode")
        ]
        token = request.get("NextToken")
        start = 0
        if token:
            if not str(token).startswith("page-") or not str(token)[5:].isdigit():
                return 400, {"__type": "InvalidNextTokenException", "message": "The pagination token is invalid. Try again without a pagination token."}
            start = int(str(token)[5:])
        page = matching[start : start + size]
        answer: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": page}
        if start + size < len(matching):
            answer["NextToken"] = f"page-{start + size}"
        return 200, answer
