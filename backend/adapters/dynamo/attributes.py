"""DynamoDB attribute values (``{"S": "x"}``, ``{"N": "1"}``, …) to and from Python values, as
boto3's ``boto3.dynamodb.types.TypeSerializer`` and ``TypeDeserializer`` convert them.

Those live in the boto3 package, and importing any of it imports boto3 whole (its session,
s3transfer and multiprocessing: about 20 ms of a cold start's CPU) while Trainbot's clients are
botocore's (:mod:`backend.adapters.aws`). The conversions are the same, number context and
errors included (tests/unit/test_dynamo_attributes.py compares them with boto3's); binary
values come back as ``bytes`` rather than boto3's ``Binary`` wrapper (Trainbot stores none).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from decimal import Clamped, Context, Decimal, Inexact, Overflow, Rounded, Underflow
from typing import Any

# DynamoDB's numbers: 38 digits of precision; anything inexact is an error, not a rounding.
DYNAMODB_CONTEXT = Context(Emin=-128, Emax=126, prec=38, traps=[Clamped, Overflow, Inexact, Rounded, Underflow])
_BINARY = (bytes, bytearray)


def _is_number(value: Any) -> bool:
    if isinstance(value, float):
        raise TypeError("Float types are not supported. Use Decimal types instead.")
    return isinstance(value, (int, Decimal))  # a bool is an int: serialize() takes bools first, as boto3 does


def _number(value: int | Decimal) -> str:
    number = str(DYNAMODB_CONTEXT.create_decimal(value))
    if number in ("Infinity", "NaN"):
        raise TypeError("Infinity and NaN not supported")
    return number


def serialize(value: Any) -> dict[str, Any]:
    """``value`` as a DynamoDB attribute value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if _is_number(value):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, _BINARY):
        return {"B": value}
    if isinstance(value, Set):
        if all(_is_number(v) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, str) for v in value):
            return {"SS": list(value)}
        if all(isinstance(v, _BINARY) for v in value):
            return {"BS": list(value)}
    if isinstance(value, Mapping):
        return {"M": {k: serialize(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [serialize(v) for v in value]}
    raise TypeError(f'Unsupported type "{type(value)}" for value "{value}"')


def deserialize(value: dict[str, Any]) -> Any:
    """The Python value of a DynamoDB attribute value (numbers as ``Decimal``, sets as sets)."""
    if not value:
        raise TypeError("Value must be a nonempty dictionary whose key is a valid dynamodb type.")
    kind = next(iter(value))
    data = value[kind]
    match kind:
        case "NULL":
            return None
        case "BOOL" | "S" | "B":
            return data
        case "N":
            return DYNAMODB_CONTEXT.create_decimal(data)
        case "NS":
            return {DYNAMODB_CONTEXT.create_decimal(n) for n in data}
        case "SS" | "BS":
            return set(data)
        case "L":
            return [deserialize(v) for v in data]
        case "M":
            return {k: deserialize(v) for k, v in data.items()}
    raise TypeError(f"Dynamodb type {kind} is not supported")
