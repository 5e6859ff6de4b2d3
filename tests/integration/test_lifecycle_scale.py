"""Scale: with 5,000 finished jobs in the table (20,000 took 30 s of the suite; the queries
never see history either way) and 50 active, a launcher tick and a monitor
sweep read a few items per active job and never Scan: their cost follows the live work, not
the table's history."""

from __future__ import annotations

import pytest

from backend.domain.status import JobStatus
from tests.harness import Stack, seed_finished

ACTIVE = 50
HISTORY = 5_000


@pytest.fixture
def stack(moto_aws):
    built = Stack(duration=3600)
    yield built
    built.close()


def test_a_tick_reads_items_in_proportion_to_active_jobs_not_history(stack):
    seed_finished(stack.store, HISTORY)
    ids = [stack.submit(f"live-{i}").job_id for i in range(ACTIVE)]
    stack.launch()
    stack.clock.advance(60)
    stack.sagemaker.drain_events()  # leave the state changes to the sweep
    assert all(job.status is JobStatus.LAUNCHED for job in stack.store.get_many(ids))

    metrics = stack.store.metrics
    metrics.reset()
    stack.launch()
    launcher_reads = metrics.items_read
    assert "scan" not in metrics.calls

    metrics.reset()
    stack.sweep()
    sweep_reads = metrics.items_read
    assert "scan" not in metrics.calls
    assert all(job.status is JobStatus.IN_PROGRESS for job in stack.store.get_many(ids))

    # The launcher reads the active set once (instance usage) plus its holds record; the sweep
    # reads the active set, and each job it moves once more (the delivery lease returns it).
    assert launcher_reads <= ACTIVE + 2
    assert sweep_reads <= 3 * ACTIVE + 2
