"""Weekly usage records (``usage#<team>#<iso week>``): billed instance-seconds, counted once per
attempt, and the instance-seconds reserved by accepted jobs (:mod:`backend.services.budget`).

Record fields: ``Seconds`` (billed), ``Counted`` (attempt names billed), ``Reserved``
(instance-seconds held by accepted jobs not yet ended), ``Holding`` (their reservation tokens)
and ``Committed`` (= ``Seconds`` + ``Reserved``, kept by every write, so the budget condition
is one comparison: DynamoDB conditions have no arithmetic)."""

from __future__ import annotations

from collections.abc import Sequence

from botocore.exceptions import ClientError

from backend.adapters.dynamo.base import DynamoTable
from backend.adapters.dynamo.codec import record_key
from backend.domain.records import RecordKind


def _refused(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoUsage(DynamoTable):
    """The :class:`backend.ports.UsageStore` part of the DynamoDB store."""

    def add_usage(self, key: str, attempt: str, seconds: int) -> bool:
        """One UpdateItem: ADD the seconds and the attempt's name to the record's ``Counted``
        string set, only if the name is not in it yet (a repeat is refused by the condition, so
        a duplicated SageMaker event counts nothing). The set holds one name per attempt of the
        team's week (about 40 bytes each: ~9,000 attempts a week fit in DynamoDB's 400 KB)."""
        try:
            self._call(
                "update_item",
                TableName=self._table,
                Key=record_key(RecordKind.USAGE, key),
                UpdateExpression="ADD Seconds :s, Committed :s, Counted :names SET RecordType = :kind",
                ConditionExpression="NOT contains(Counted, :name)",
                ExpressionAttributeValues={
                    ":s": {"N": str(int(seconds))},
                    ":names": {"SS": [attempt]},
                    ":name": {"S": attempt},
                    ":kind": {"S": RecordKind.USAGE.value},
                },
            )
        except ClientError as exc:
            if _refused(exc):
                return False
            raise
        return True

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
