"""Weekly usage records (``usage#<team>#<iso week>``): billed instance-seconds, counted once per
attempt by a small mark of the attempt's own (``counted#<attempt name>``, expiring, so the
record stays the same size however many attempts a team's week counts), and the
instance-seconds reserved by accepted jobs (:mod:`backend.services.budget`).

Record fields: ``Seconds`` (billed), ``Reserved`` (instance-seconds held by accepted jobs not
yet ended), ``Holding`` (their reservation tokens) and ``Committed`` (= ``Seconds`` +
``Reserved``, kept by every write, so the budget condition is one comparison: DynamoDB
conditions have no arithmetic)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from backend.adapters.dynamo.base import DynamoTable
from backend.adapters.dynamo.codec import record_key
from backend.domain.records import RecordKind
from backend.errors import StoreUnavailable

# A mark only has to outlive the ways an attempt's end can be counted again (EventBridge's
# redeliveries within 24 hours, a monitor retrying its count); a month is ample.
MARK_SECONDS = 35 * 24 * 3600
_CONFLICT_ROUNDS = 6


def _refused(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoUsage(DynamoTable):
    """The :class:`backend.ports.UsageStore` part of the DynamoDB store."""

    def add_usage(self, key: str, attempt: str, seconds: int, *, release: tuple[str, str, int] | None = None) -> bool:
        """One TransactWriteItems: create the attempt's mark (only if it has none) and ADD the
        seconds to the usage record, both or neither; False when the attempt was counted before
        (a duplicated SageMaker event, a retried count). With ``release`` (key, token, seconds),
        the same transaction gives that reservation back, on condition it is still held (on the
        same record: one update does both; a transaction writes an item once). Every write is an
        UpdateItem: the monitor's role may update records, not put them."""
        mark = {
            "Update": {
                "TableName": self._table,
                "Key": record_key(RecordKind.COUNTED, attempt),
                "UpdateExpression": "SET RecordType = :kind, ExpiresAt = :expires, UsageKey = :key",
                "ConditionExpression": "attribute_not_exists(JobId)",
                "ExpressionAttributeValues": {
                    ":kind": {"S": RecordKind.COUNTED.value},
                    ":expires": {"N": str(int(time.time()) + MARK_SECONDS)},
                    ":key": {"S": key},
                },
            }
        }
        counted_values: dict[str, Any] = {":s": {"N": str(int(seconds))}, ":kind": {"S": RecordKind.USAGE.value}}
        usage: dict[str, Any] = {
            "Update": {
                "TableName": self._table,
                "Key": record_key(RecordKind.USAGE, key),
                "UpdateExpression": "ADD Seconds :s, Committed :s SET RecordType = :kind",
                "ExpressionAttributeValues": counted_values,
            }
        }
        items = [mark, usage]
        if release is not None:
            held_key, token, held = release
            freed = {":minus": {"N": str(-int(held))}, ":tokens": {"SS": [token]}, ":token": {"S": token}}
            if held_key == key:
                usage["Update"].update(
                    UpdateExpression="ADD Seconds :s, Committed :net, Reserved :minus DELETE Holding :tokens SET RecordType = :kind",
                    ConditionExpression="contains(Holding, :token)",
                    ExpressionAttributeValues={**counted_values, **freed, ":net": {"N": str(int(seconds) - int(held))}},
                )
            else:
                items.append({
                    "Update": {
                        "TableName": self._table,
                        "Key": record_key(RecordKind.USAGE, held_key),
                        "UpdateExpression": "ADD Reserved :minus, Committed :minus DELETE Holding :tokens",
                        "ConditionExpression": "contains(Holding, :token)",
                        "ExpressionAttributeValues": freed,
                    }
                })
        for round_ in range(_CONFLICT_ROUNDS):
            try:
                self._call("transact_write_items", TransactItems=items)
            except ClientError as exc:
                codes = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                if codes and codes[0] == "ConditionalCheckFailed":
                    if release is not None:
                        self.release(*release)  # counted before, by a run killed before its release
                    return False
                if release is not None and "ConditionalCheckFailed" in codes[1:]:
                    return self.add_usage(key, attempt, seconds)  # the reservation was given back already
                if "TransactionConflict" not in codes:
                    raise StoreUnavailable(f"DynamoDB TransactWriteItems failed: {codes or exc}") from exc
                # Another count of the same team's week is in flight: wait and try again.
                self._backoff(round_)
                continue
            return True
        raise StoreUnavailable(f"usage of {attempt} not counted: its week's record kept conflicting")

    def reserve(self, key: str, tokens: Sequence[str], seconds: int, limit: int | None) -> bool:
        """One UpdateItem: ADD ``seconds`` to ``Reserved`` and ``Committed`` and ``tokens`` to
        ``Holding``, on condition that ``Committed + seconds <= limit`` (written as ``Committed
        <= limit - seconds``) and that ``tokens[0]`` is not held yet. True when reserved now or
        before (a repeat); False when it does not fit."""
        if not tokens:
            return True
        if limit is not None and seconds > limit:
            return False
        values = {
            ":s": {"N": str(int(seconds))},
            ":tokens": {"SS": list(tokens)},
            ":token": {"S": tokens[0]},
            ":kind": {"S": RecordKind.USAGE.value},
        }
        condition = "NOT contains(Holding, :token)"
        if limit is not None:
            condition += " AND (attribute_not_exists(Committed) OR Committed <= :room)"
            values[":room"] = {"N": str(int(limit) - int(seconds))}
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=record_key(RecordKind.USAGE, key),
                UpdateExpression="ADD Reserved :s, Committed :s, Holding :tokens SET RecordType = :kind",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if not _refused(exc):
                raise
            record = self.get_record(RecordKind.USAGE, key) or {}  # type: ignore[attr-defined]
            return tokens[0] in (record.get("Holding") or ())
        return True

    def release(self, key: str, token: str, seconds: int) -> bool:
        """One UpdateItem: take ``token``'s ``seconds`` off ``Reserved`` and ``Committed``, only
        if the token is held (a repeat releases nothing); whether it released now."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=record_key(RecordKind.USAGE, key),
                UpdateExpression="ADD Reserved :minus, Committed :minus DELETE Holding :tokens",
                ConditionExpression="contains(Holding, :token)",
                ExpressionAttributeValues={
                    ":minus": {"N": str(-int(seconds))},
                    ":tokens": {"SS": [token]},
                    ":token": {"S": token},
                },
            )
        except ClientError as exc:
            if _refused(exc):
                return False
            raise
        return True
