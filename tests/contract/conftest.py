"""The contract suite runs every test twice: on the in-memory fake and on DynamoJobStore over
moto (its table created from template.yaml), so the fake the unit tests trust behaves as the
real store does."""

from __future__ import annotations

import pytest

from backend.ports import JobStore
from tests.fakes.memory_store import MemoryJobStore


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> JobStore:
    if request.param == "memory":
        return MemoryJobStore()
    from backend.adapters.dynamo import DynamoJobStore

    dynamodb = request.getfixturevalue("dynamodb")
    return DynamoJobStore(dynamodb, request.getfixturevalue("jobs_table"), sleep=lambda _s: None)
