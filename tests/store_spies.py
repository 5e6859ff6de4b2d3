"""Spies on a job store (the fake or DynamoJobStore) for tests that must show a write happened
once: each job item's puts, and the owner fair-share clock's advances."""

from __future__ import annotations

from collections import Counter

from tests.fakes.memory_store import MemoryJobStore


def job_writes(store) -> Counter[str]:
    """How often each job item is written (put) from now on, counted where the write happens:
    the fake's one store step, DynamoDB's PutItem and BatchWriteItem requests."""
    writes: Counter[str] = Counter()
    if isinstance(store, MemoryJobStore):
        write = store._store

        def counted(job, outbox_view=None):
            writes[job.job_id] += 1
            write(job, outbox_view)

        store._store = counted
        return writes

    def count(params, **_kwargs):
        items = [params["Item"]] if "Item" in params else [
            r["PutRequest"]["Item"] for rs in params.get("RequestItems", {}).values() for r in rs if "PutRequest" in r
        ]
        writes.update(i["JobId"]["S"] for i in items if "JobStatus" in i)

    for operation in ("PutItem", "BatchWriteItem"):
        store._client.meta.events.register(f"provide-client-params.dynamodb.{operation}", count)
    return writes


def clock_moves(store) -> list[float]:
    """The owner fair-share clock advances the store asks for from now on."""
    moves: list[float] = []
    advance = store._advance_owner_clock
    store._advance_owner_clock = lambda owner, tag: (moves.append(tag), advance(owner, tag))[1]
    return moves
