"""The simulation, in the default suite: a few hundred schedules of users, functions, SageMaker
and faults in any order; every invariant checked after each step and at rest (README,
"Simulation"). ``./dev sim --examples N [--seed S]`` runs a long one. Each shard is seeded
(``S * 1000 + shard``, S = 0 by default), so a run replays exactly; a failure prints its seed
and the shrunk schedule, which also replays on its own as ``SimWorld().run(schedule)``."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, seed, settings

from tests.sim.schedules import schedules, through_bot
from tests.sim.world import SimWorld

EXAMPLES = int(os.environ.get("TRAINBOT_SIM_EXAMPLES", "300"))
SHARDS = 2  # one per core under xdist


@pytest.mark.parametrize("shard", range(SHARDS))
def test_no_schedule_of_users_functions_and_faults_breaks_an_invariant(shard, request):
    base = request.config.getoption("--hypothesis-seed", default=None)
    shard_seed = int(base or 0) * 1000 + shard

    @seed(shard_seed)
    @settings(
        max_examples=max(1, EXAMPLES // SHARDS), deadline=None, suppress_health_check=list(HealthCheck), database=None, print_blob=True
    )
    @given(schedule=schedules, through_bot=through_bot)
    def explore(schedule, through_bot):
        SimWorld(seed=shard_seed, through_bot=through_bot).run(schedule)

    try:
        explore()
    except AssertionError as exc:
        exc.add_note(f"simulation seed {shard_seed} (replay: ./dev sim --seed {base or 0})")
        raise


MOTO_EXAMPLES = max(1, EXAMPLES // 60)  # DynamoDB on moto is ~30x slower per schedule than the fake store


def test_the_same_schedules_hold_on_dynamodb_on_moto(dynamodb):
    """A share of the schedules against the DynamoDB store on moto (the real conditional writes,
    indexes and outbox), so a difference between the fake and the real store cannot hide."""
    import uuid

    from hypothesis import strategies as st

    from backend.adapters.dynamo import DynamoJobStore
    from infra.template import create_jobs_table

    def store():
        name = f"sim-{uuid.uuid4().hex[:8]}"
        create_jobs_table(dynamodb, name)
        return DynamoJobStore(dynamodb, name, sleep=lambda _s: None)

    @seed(7)
    @settings(max_examples=MOTO_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(schedule=schedules.filter(lambda s: len(s) <= 15), world_seed=st.integers(0, 1000), through_bot=through_bot)
    def explore(schedule, world_seed, through_bot):
        SimWorld(seed=world_seed, store_factory=store, through_bot=through_bot).run(schedule)

    explore()
