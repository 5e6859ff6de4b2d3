"""Weekly usage records (``usage#<team>#<iso week>``): billed instance-seconds, counted once per
attempt (:mod:`backend.services.budget`) by a small mark of the attempt's own
(``counted#<attempt name>``, expiring), so the usage record stays the same size however many
attempts a team's week counts."""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from backend.adapters.dynamo.base import DynamoTable
from backend.adapters.dynamo.codec import record_key
from backend.domain.records import RecordKind
from backend.errors import StoreUnavailable

# A mark only has to outlive the ways an attempt's end can be counted again (EventBridge's
# redeliveries within 24 hours, a monitor retrying its count); a month is ample.
MARK_SECONDS = 35 * 24 * 3600
_CONFLICT_ROUNDS = 6


class DynamoUsage(DynamoTable):
    """The :class:`backend.ports.UsageStore` part of the DynamoDB store."""

    def add_usage(self, key: str, attempt: str, seconds: int) -> bool:
        """One TransactWriteItems: create the attempt's mark (only if it has none) and ADD the
        seconds to the usage record, both or neither; False when the attempt was counted before
        (a duplicated SageMaker event, a retried count). Both writes are UpdateItems: the
        monitor's role may update records, not put them."""
        items = [
            {
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
            },
            {
                "Update": {
                    "TableName": self._table,
                    "Key": record_key(RecordKind.USAGE, key),
                    "UpdateExpression": "ADD Seconds :s SET RecordType = :kind",
                    "ExpressionAttributeValues": {":s": {"N": str(int(seconds))}, ":kind": {"S": RecordKind.USAGE.value}},
                }
            },
        ]
        for round_ in range(_CONFLICT_ROUNDS):
            try:
                self._call("transact_write_items", TransactItems=items)
            except ClientError as exc:
                codes = [r.get("Code") for r in exc.response.get("CancellationReasons") or []]
                if codes and codes[0] == "ConditionalCheckFailed":
                    return False
                if "TransactionConflict" not in codes:
                    raise StoreUnavailable(f"DynamoDB TransactWriteItems failed: {codes or exc}") from exc
                # Another count of the same team's week is in flight: wait and try again.
                self._backoff(round_)
                continue
            return True
        raise StoreUnavailable(f"usage of {attempt} not counted: its week's record kept conflicting")
