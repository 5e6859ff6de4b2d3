"""Confirming a parked sweep twice at once, on DynamoDB (moto): one root, each job written
once, the owner's clock moved once (the scenarios: tests/unit/services/test_sweep_confirmation.py)."""

from __future__ import annotations

from backend.adapters.dynamo import DynamoJobStore
from tests.unit.services import test_sweep_confirmation as scenarios
from tests.unit.services.conftest import World


def _world(dynamodb, jobs_table) -> World:
    return World(store=DynamoJobStore(dynamodb, jobs_table, sleep=lambda _s: None))  # type: ignore[arg-type]


def test_a_second_confirmation_inside_the_first_posts_no_root_and_writes_no_job_on_dynamodb(dynamodb, jobs_table):
    scenarios.second_confirmation_inside_the_first_changes_nothing(_world(dynamodb, jobs_table))


def test_a_press_after_a_crashed_confirmation_finishes_the_sweep_on_dynamodb(dynamodb, jobs_table):
    scenarios.a_press_after_a_crashed_confirmation_finishes_the_sweep(_world(dynamodb, jobs_table))
