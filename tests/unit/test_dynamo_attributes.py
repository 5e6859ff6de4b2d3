"""The store's DynamoDB attribute values convert exactly as boto3's TypeSerializer and
TypeDeserializer do (backend.adapters.dynamo.attributes: boto3's package is not imported by a
cold start)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

from backend.adapters.dynamo.attributes import deserialize, serialize

VALUES = [
    None,
    True,
    False,
    0,
    -7,
    2**63,
    Decimal("1.5"),
    Decimal("0.000001"),
    Decimal("1E+10"),
    "",
    "héllo",
    b"\x00\x01",
    {"ml.p4d.24xlarge", "ml.g5.xlarge"},
    {Decimal("1.25"), 3},
    [],
    [1, "a", None, [True, {"x": Decimal("2.50")}]],
    {},
    {"Holds": {"ml.p4d.24xlarge": {"Until": "2026-12-07T10:00:00Z", "Active": 2}}, "Holding": {"t1", "t2"}},
    ("tuple", 1),
]


def _same(value):
    """Sets serialize in iteration order: compare them as sets."""
    if isinstance(value, dict):
        return {k: (sorted(v) if k in ("SS", "NS", "BS") else _same(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_same(v) for v in value]
    return value


def _id(value: object) -> str:
    """A test id the same in every process (xdist compares them; a set's repr is not): the
    value's type, numbered by pytest when repeated."""
    return type(value).__name__


@pytest.mark.parametrize("value", VALUES, ids=_id)
def test_a_value_serializes_as_boto3_serializes_it_and_comes_back_as_boto3_reads_it(value):
    ours = serialize(value)
    assert _same(ours) == _same(TypeSerializer().serialize(value))
    theirs = TypeDeserializer().deserialize(ours)
    back = deserialize(ours)
    assert back == (theirs.value if isinstance(theirs, Binary) else theirs)
    assert type(back) is (bytes if isinstance(theirs, Binary) else type(theirs))


@pytest.mark.parametrize("value", [1.5, float("nan"), {1.5}, Decimal("1.23456789012345678901234567890123456789"), Decimal("Infinity"), object()], ids=_id)
def test_what_boto3_refuses_is_refused_with_its_message(value):
    with pytest.raises(Exception) as theirs:
        TypeSerializer().serialize(value)
    with pytest.raises(type(theirs.value)) as ours:
        serialize(value)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("value", [{}, {"X": "1"}], ids=_id)
def test_an_unknown_attribute_value_is_a_type_error_as_in_boto3(value):
    with pytest.raises(TypeError) as theirs:
        TypeDeserializer().deserialize(value)
    with pytest.raises(TypeError) as ours:
        deserialize(value)
    assert str(ours.value) == str(theirs.value)
