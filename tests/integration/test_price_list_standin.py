"""The Price List stand-in answers GetProducts as AWS documents it (the documented example is
tests/fixtures/pricing_get_products.json), refuses what the real API refuses, and the adapter
reads SageMaker Training's hourly prices from its JSON strings and nothing else."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

from backend.adapters.pricing import PriceList, endpoint_region, hourly_prices, training_filters
from infra.local.standins.pricing import PriceListStandIn
from tests.fixtures import samples


@pytest.fixture
def standin():
    server = PriceListStandIn()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _client(standin, region: str = "us-east-1"):
    return boto3.client(
        "pricing", region_name=region, endpoint_url=standin.url, aws_access_key_id="standin", aws_secret_access_key="standin"
    )


def _shape(value):
    """The keys of a product document, level by level (SKU-named keys collapsed)."""
    if isinstance(value, dict):
        return {("<code>" if "." in k or k.isupper() and len(k) > 8 else k): _shape(v) for k, v in value.items() if k != "attributes"}
    return type(value).__name__


def test_the_stand_in_answers_in_the_documented_shape_a_list_of_json_strings(standin):
    documented = samples.load("pricing_get_products.json")["response"]
    answer = _client(standin).get_products(ServiceCode="AmazonSageMaker", Filters=training_filters("us-east-1"), MaxResults=5)

    assert answer["FormatVersion"] == documented["FormatVersion"] == "aws_v1"
    assert set(answer) - {"ResponseMetadata"} == set(documented) and len(answer["PriceList"]) == 5
    assert all(isinstance(entry, str) for entry in answer["PriceList"] + documented["PriceList"])
    ours, theirs = json.loads(answer["PriceList"][0]), json.loads(documented["PriceList"][0])
    assert _shape(ours) == _shape(theirs)


def test_the_adapter_reads_training_prices_per_hour_and_skips_other_products():
    documented = samples.load("pricing_get_products.json")["response"]["PriceList"]
    assert hourly_prices(documented) == {}  # an EC2 volume priced per GB-month is no training instance
    assert hourly_prices(["not json", "[]", json.dumps({"product": {}})]) == {}


def test_every_page_is_read_and_only_the_regions_training_prices_kept(standin):
    prices = PriceList(_client(standin)).training_prices("us-east-1")
    assert prices["ml.trn1.32xlarge"] == 24.725 and prices["ml.g5.xlarge"] == 1.408  # Training, not Hosting
    assert standin.calls == 1
    small_pages = PriceList(_client(standin))
    small_pages._page_size = 3  # the stand-in pages at MaxResults, as the real API does
    assert small_pages.training_prices("us-east-1") == prices and standin.calls > 1 + len(prices) // 3
    ireland = PriceList(_client(standin)).training_prices("eu-west-1")
    assert ireland["ml.g5.xlarge"] == pytest.approx(1.408 * 1.1)


def test_the_price_list_answers_only_at_its_endpoint_regions_and_a_stack_uses_the_nearest():
    assert endpoint_region("us-west-2") == "us-east-1"
    assert endpoint_region("eu-west-1") == "eu-central-1"
    assert endpoint_region("ap-northeast-1") == "ap-south-1"
    server = PriceListStandIn()
    server.start()
    try:
        with pytest.raises(ClientError):
            _client(server, "eu-west-1").get_products(ServiceCode="AmazonSageMaker")
        assert _client(server, endpoint_region("eu-west-1")).get_products(ServiceCode="AmazonSageMaker", MaxResults=1)["PriceList"]
    finally:
        server.stop()


def test_the_stand_in_refuses_what_the_real_api_refuses(standin):
    client = _client(standin)
    with pytest.raises(ClientError):
        client.get_products(ServiceCode="AmazonSageMaker", NextToken="forged")
    with pytest.raises(ClientError):
        client.get_products(ServiceCode="AmazonSageMaker", Filters=[{"Type": "FUZZY", "Field": "component", "Value": "Training"}])
    with pytest.raises(ClientError):
        client.get_products(ServiceCode="AmazonEC2")  # this stand-in's catalogue is SageMaker's
    anyof = client.get_products(ServiceCode="AmazonSageMaker", Filters=[{"Type": "ANY_OF", "Field": "component", "Value": "Training, Hosting"}])
    assert {json.loads(e)["product"]["attributes"]["component"] for e in anyof["PriceList"]} == {"Training", "Hosting"}
