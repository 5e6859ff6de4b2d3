"""The stand-in speed-up (infra.local.standins.moto_fast): moto's DynamoDB answers written with
json.dumps must parse, through boto3, exactly as moto's own serializer's do, for items of
every attribute type and every operation Trainbot uses that returns items."""

from __future__ import annotations

from decimal import Decimal

import pytest
from moto.dynamodb.responses import DynamoResult

from infra.local.standins import moto_fast

ITEM = {
    "JobId": {"S": "bert-1"},
    "Seq": {"N": "12"},
    "Ratio": {"N": "0.25"},
    "Done": {"BOOL": False},
    "Gone": {"NULL": True},
    "Tags": {"SS": ["a", "b"]},
    "Sizes": {"NS": ["1", "2.5"]},
    "History": {"L": [{"M": {"to": {"S": "New"}, "seq": {"N": "1"}, "quote": {"S": 'say "hi" \\ ünï'}}}]},
    "Args": {"M": {"ResourceConfig": {"M": {"InstanceCount": {"N": "1"}}}, "Empty": {"M": {}}, "None": {"L": []}}},
}
BINARY = {"JobId": {"S": "bin-1"}, "Blob": {"B": b"\x00\x01raw"}, "Blobs": {"BS": [b"x", b"y"]}}


def _calls(client, table: str) -> dict:
    key = {"JobId": {"S": "bert-1"}}
    return {
        "get": client.get_item(TableName=table, Key=key, ConsistentRead=True),
        "get_missing": client.get_item(TableName=table, Key={"JobId": {"S": "nope"}}),
        "get_binary": client.get_item(TableName=table, Key={"JobId": {"S": "bin-1"}}),
        "query": client.query(TableName=table, KeyConditionExpression="JobId = :j", ExpressionAttributeValues={":j": {"S": "bert-1"}}),
        "batch": client.batch_get_item(RequestItems={table: {"Keys": [key, {"JobId": {"S": "bin-1"}}]}}),
        "scan": client.scan(TableName=table, Limit=1),
        "update": client.update_item(
            TableName=table,
            Key=key,
            UpdateExpression="SET Ratio = :r",
            ExpressionAttributeValues={":r": {"N": "0.5"}},
            ReturnValues="ALL_NEW",
            ReturnConsumedCapacity="TOTAL",
        ),
        "put_old": client.put_item(TableName=table, Item=ITEM, ReturnValues="ALL_OLD"),
        "describe": client.describe_table(TableName=table),
    }


def _without_metadata(answers: dict) -> dict:
    return {name: {k: v for k, v in answer.items() if k != "ResponseMetadata"} for name, answer in answers.items()}


@pytest.fixture
def table(dynamodb):
    name = "moto-fast"
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "JobId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "JobId", "AttributeType": "S"}],
    )
    return name


def _fresh(client, table: str) -> None:
    client.put_item(TableName=table, Item=ITEM)
    client.put_item(TableName=table, Item=BINARY)


def test_answers_written_directly_parse_exactly_as_motos_own(dynamodb, table, monkeypatch):
    assert DynamoResult.execute_result is not moto_fast.original_execute_result(), "the speed-up is installed in tests"
    _fresh(dynamodb, table)
    fast = _without_metadata(_calls(dynamodb, table))

    monkeypatch.setattr(DynamoResult, "execute_result", moto_fast.original_execute_result())
    _fresh(dynamodb, table)
    slow = _without_metadata(_calls(dynamodb, table))

    for name in slow:
        if name == "describe":
            continue  # a timestamp: moto's serializer answers (both paths take it)
        assert fast[name] == slow[name], name
    assert fast["describe"]["Table"]["CreationDateTime"] is not None
    assert fast["get"]["Item"]["Sizes"] == {"NS": ["1", "2.5"]} and fast["get"]["Item"]["Gone"] == {"NULL": True}
    assert fast["get_binary"]["Item"]["Blob"] == {"B": b"\x00\x01raw"}
    assert fast["get_missing"] == {}
    assert fast["update"]["ConsumedCapacity"]["CapacityUnits"] == slow["update"]["ConsumedCapacity"]["CapacityUnits"]
    assert Decimal(fast["update"]["Attributes"]["Ratio"]["N"]) == Decimal("0.5")


def test_plain_answers_skip_the_shape_walk_and_others_do_not():
    assert moto_fast._plain({"Items": [{"a": {"S": "x"}, "n": {"N": "1"}}], "Count": 1}) == {
        "Items": [{"a": {"S": "x"}, "n": {"N": "1"}}],
        "Count": 1,
    }
    for odd in ({"B": b"raw"}, {"At": __import__("datetime").datetime(2026, 1, 1)}, {"Maybe": None}):
        with pytest.raises(moto_fast._NotPlain):
            moto_fast._plain(odd)
