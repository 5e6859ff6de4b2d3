"""moto's DynamoDB answers, written straight to JSON.

moto 5.2 turns every DynamoDB answer into JSON by walking botocore's output shape member by
member (a shape lookup and an alias check for every attribute of every item). For the jobs
table that is most of moto's time: a Query returning 200 job items, each a map of maps, costs
tens of milliseconds, and in-process moto holds one lock while it works, so the chaos test and
local mode's single-threaded server spend their time there rather than in Trainbot.

DynamoDB's wire format *is* the JSON of those dictionaries (AttributeValues are already
``{"S": …}``/``{"N": "…"}`` maps), so an answer made only of strings, numbers, booleans, lists
and maps is written with ``json.dumps``, without the walk. Anything else (binary, timestamps
as in DescribeTable, a ``None``) goes through moto's own serializer, as before. The bytes a
client parses are the same: ``tests/unit/test_moto_fast.py`` compares both paths on items of
every attribute type.
"""

from __future__ import annotations

import json
from typing import Any

_installed = False


class _NotPlain(Exception):
    pass


def _plain(value: Any) -> Any:
    """The value as JSON-ready data, or _NotPlain where moto's serializer must decide
    (bytes are base64-encoded by it, datetimes formatted, None members left out)."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or kind is float:
        return value
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    if kind is list:
        return [_plain(item) for item in value]
    raise _NotPlain


def original_execute_result() -> Any:
    from moto.dynamodb.responses import DynamoResult

    return getattr(DynamoResult, "_trainbot_original", DynamoResult.execute_result)


def install() -> None:
    """Write moto's DynamoDB answers with json.dumps where that gives the very same JSON.
    Idempotent; affects this process's moto (in-process mock and moto's server alike)."""
    global _installed
    if _installed:
        return
    from moto.dynamodb.responses import DynamoResult

    original = DynamoResult.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        try:
            body = json.dumps(_plain(self.result))
        except _NotPlain:
            return original(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    DynamoResult._trainbot_original = original  # type: ignore[attr-defined]
    DynamoResult.execute_result = execute_result  # type: ignore[method-assign]
    _installed = True
