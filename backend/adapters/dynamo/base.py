"""The table handle every part of the DynamoDB store shares: the client, one call wrapper that
turns failures into typed errors, paged queries, and the call counters benchmarks read."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from backend.adapters.dynamo.codec import expires_at, from_item, to_item
from backend.errors import StoreUnavailable, UnreadableItem

if TYPE_CHECKING:
    from backend.domain.model import Job

logger = Logger(service="trainbot", child=True)

BATCH_WRITE_SIZE = 25
BATCH_GET_SIZE = 100
MAX_UNPROCESSED_ROUNDS = 8


@dataclass
class StoreMetrics:
    """What the store asked DynamoDB: calls by operation, and items read (ScannedCount for
    queries, items returned for gets). Benchmarks and scale tests read these."""

    calls: Counter[str] = field(default_factory=Counter)
    items_read: int = 0
    # Job items a listing skipped because this version cannot decode them (UnreadableItem).
    unreadable_items: int = 0
    # Registrations whose owner's fair-share clock could not be moved (the job is written).
    owner_clock_misses: int = 0

    def reset(self) -> None:
        self.calls.clear()
        self.items_read = 0
        self.unreadable_items = 0
        self.owner_clock_misses = 0


class DynamoTable:
    """One DynamoDB table as the store's parts use it."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        notify_targets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        retention_days: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table_name
        self._notify_targets = tuple(notify_targets)
        self._sleep = sleep
        self._monotonic = monotonic
        self._paced_until = float("-inf")  # when batch registration may write again (see _pace)
        self._retention_days = retention_days
        self.metrics = StoreMetrics()

    @property
    def table_name(self) -> str:
        return self._table

    @property
    def notify_targets(self) -> tuple[str, ...]:
        return self._notify_targets

    def set_notify_targets(self, targets: Sequence[str]) -> None:
        """The notifiers whose deliveries the Outbox index tracks (set once, when wiring)."""
        self._notify_targets = tuple(targets)

    @property
    def retention_days(self) -> int:
        return self._retention_days

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One DynamoDB call; failures after boto3's own retries become StoreUnavailable,
        except conditional-check failures, which callers handle."""
        self.metrics.calls[operation] += 1
        try:
            answer: dict[str, Any] = getattr(self._client, operation)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"ConditionalCheckFailedException", "TransactionCanceledException"}:
                raise
            raise StoreUnavailable(f"DynamoDB {operation} failed: {code}: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"DynamoDB {operation} could not be reached: {exc}") from exc
        return answer

    def _item(self, job: Job) -> dict[str, Any]:
        item = to_item(job, self._notify_targets)
        expires = expires_at(job, self._retention_days)
        if expires is not None:
            # DynamoDB TTL (template.yaml) deletes the item some time after this; a retried
            # job is no longer terminal, so its next write REMOVEs the attribute again.
            item["ExpiresAt"] = {"N": str(expires)}
        return item

    def _backoff(self, round_: int) -> None:
        """DynamoDB throttled part of a batch: back off (full jitter) before resending the rest."""
        self._sleep(random.uniform(0, min(2.0, 0.05 * 2**round_)))

    def _query(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Query pages, counting the items DynamoDB read."""
        kwargs = {"TableName": self._table, **kwargs}
        while True:
            answer = self._call("query", **kwargs)
            self.metrics.items_read += answer.get("ScannedCount", 0)
            yield answer
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _readable(self, items: Iterable[dict[str, Any]]) -> Iterator[Job]:
        """The jobs ``items`` hold, skipping (logged and counted) those this version cannot
        decode: one bad item costs only itself, never the listing (a launcher tick, a sweep)."""
        for item in items:
            try:
                yield from_item(item)
            except UnreadableItem as exc:
                self.metrics.unreadable_items += 1
                logger.error("unreadable job item skipped", extra={"job_id": exc.key, "error": str(exc)})

    def _batch_get(self, ids: list[str], *, keys_only: bool = False, consistent: bool = True) -> Iterator[dict[str, Any]]:
        for start in range(0, len(ids), BATCH_GET_SIZE):
            keys = [{"JobId": {"S": i}} for i in ids[start : start + BATCH_GET_SIZE]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": consistent}}
            if keys_only:
                request[self._table]["ProjectionExpression"] = "JobId"
            for round_ in range(MAX_UNPROCESSED_ROUNDS):
                answer = self._call("batch_get_item", RequestItems=request)
                for item in answer.get("Responses", {}).get(self._table, []):
                    self.metrics.items_read += 1
                    yield item
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._backoff(round_)
            else:
                raise StoreUnavailable("DynamoDB kept keys unprocessed")

    def _jobs_by_id(self, job_ids: Iterable[str], *, consistent: bool = True) -> list[Job]:
        """The readable jobs among ``job_ids`` (BatchGetItem), in the order asked: how every
        query over an index that does not project whole items (Active, Queue, Owner, ByDay)
        reads what it returns."""
        ids = list(dict.fromkeys(job_ids))
        found = {job.job_id: job for job in self._readable(self._batch_get(ids, consistent=consistent))}
        return [found[i] for i in ids if i in found]
