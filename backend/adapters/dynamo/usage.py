"""Weekly usage records (``usage#<team>#<iso week>``): billed instance-seconds, counted once per
attempt (:mod:`backend.services.budget`)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from backend.adapters.dynamo.base import DynamoTable
from backend.adapters.dynamo.codec import record_key
from backend.domain.records import RecordKind


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
                UpdateExpression="ADD Seconds :s, Counted :names SET RecordType = :kind",
                ConditionExpression="NOT contains(Counted, :name)",
                ExpressionAttributeValues={
                    ":s": {"N": str(int(seconds))},
                    ":names": {"SS": [attempt]},
                    ":name": {"S": attempt},
                    ":kind": {"S": RecordKind.USAGE.value},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
