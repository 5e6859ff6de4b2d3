"""The stats rollup on the jobs table (moto, created from template.yaml): the Ended index, the
COUNT queries and the conditional record writes the roller and the read rely on, against
reading every job."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import Owner
from backend.domain.records import RecordKind
from backend.domain.status import TERMINAL
from backend.domain.times import format_utc
from backend.services import rollup
from backend.services.stats import collect, compute_stats
from tests.stats_history import seed
from tests.unit.services.test_rollup import USERS, World, _agree, _exact


def test_the_rollup_over_dynamodb_answers_as_reading_every_job_does(store, dynamodb, jobs_table):
    world = World(1)
    for _ in range(120):
        world.step()
    world.finish_everything()
    jobs = world.store.get_many(world.ids)
    assert all(j.status in TERMINAL for j in jobs)
    seed(dynamodb, jobs_table, jobs)  # the items as the store writes them, Ended included
    first = min(format_utc(j.created_at) for j in jobs)[:13]
    # A roller that began before the first job (its first run writes this cursor).
    assert store.put_record(RecordKind.STATS, "cursor", {"Since": first, "Ends": first + ":0", "Created": first}, only_if_absent=True)
    clock = world.clock
    clock.advance(timedelta(hours=2))
    roller = rollup.StatsRoller(store, clock)
    for _ in range(50):
        report = roller.roll()
        if report.caught_up and not report.slices:
            break
    assert report.caught_up
    assert sum(int((store.get_record(RecordKind.STATS, f"ends#{name}") or {}).get("Jobs", 0)) for name in _slices(first, clock())) == len(jobs)

    store.metrics.reset()
    everyone = collect(store, None, 2, None, clock())
    assert everyone.from_tallies
    _agree(everyone, _exact(world, 2))
    assert store.metrics.calls["scan"] == 0
    for user in USERS:
        owner = Owner(team_id="T1", user_id=user)
        mine = collect(store, owner, 2, None, clock())
        _agree(mine, compute_stats([j for j in jobs if j.owner == owner], mine.window, clock()))
        assert mine.total == sum(1 for j in jobs if j.owner == owner and mine.window.contains(j.created_at))


def _slices(first_hour: str, until):
    name = first_hour + ":0"
    while rollup.slice_start(name) < until:
        yield name
        name = rollup.next_slice(name)
