"""Why is it waiting? Each cause, produced by the launcher itself and read back by the queue
view: queue position, fair share, an instance hold, an instance limit, the capacity budget."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import FailureClass
from backend.services.queue import QueueView
from tests.conftest import job_args
from tests.unit.services.conftest import POLICY

P4D = job_args(ResourceConfig={"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50})


def view(world) -> QueueView:
    return QueueView(
        world.store,
        limits=world.instance_limits,
        capacity_max_wait=timedelta(seconds=POLICY.capacity_max_wait_seconds),
        clock=world.clock,
    )


def test_queue_position_counts_the_jobs_of_the_same_priority_ahead_in_launch_order(world):
    first = world.submit("a")
    world.clock.advance(timedelta(seconds=1))
    urgent = world.submit("b", priority=9)
    world.clock.advance(timedelta(seconds=1))
    second = world.submit("c")

    reasons = {r.job_id: r for r in view(world).reasons()}

    assert [r.job_id for r in view(world).reasons()] == [urgent.job_id, first.job_id, second.job_id]
    assert (reasons[urgent.job_id].position, reasons[urgent.job_id].same_priority) == (1, 1)
    assert (reasons[second.job_id].position, reasons[second.job_id].same_priority) == (2, 2)
    assert reasons[second.job_id].causes == ["queue"]


def test_fair_share_says_how_many_of_a_colleagues_jobs_are_ahead_and_how_many_of_ones_own(world):
    sweep = [world.submit(f"sweep-{i}", user="U2") for i in range(3)]  # the colleague's clock runs ahead
    world.clock.advance(timedelta(seconds=1))
    mine = world.submit("mine", user="U1")
    world.clock.advance(timedelta(seconds=1))
    mine_later = world.submit("mine-2", user="U1")

    reasons = {r.job_id: r for r in view(world).reasons()}

    # One quantum per queued job: "mine" (tag now) sorts after the sweep's first job only.
    assert reasons[mine.job_id].ahead_of_other_owners == 1 and reasons[mine.job_id].ahead_of_own == 0
    assert "fair-share" in reasons[mine.job_id].causes
    assert reasons[mine_later.job_id].ahead_of_own == 1
    assert reasons[sweep[2].job_id].ahead_of_own == 2


def test_a_quota_refusal_holds_the_instance_type_and_the_waiting_jobs_say_until_when_and_what_budget_is_left(world):
    refused = world.submit("refused", job_args=P4D)
    behind = world.submit("behind", job_args=P4D)
    world.backend.refuse_next(FailureClass.QUOTA, "ResourceLimitExceeded: quota")

    world.launcher().run_tick()
    world.clock.advance(timedelta(seconds=5))
    reasons = {r.job_id: r for r in view(world).reasons("ml.p4d.24xlarge")}

    refused_reason, behind_reason = reasons[refused.job_id], reasons[behind.job_id]
    assert behind_reason.hold_until is not None and behind_reason.hold_until > world.clock()
    assert "hold" in behind_reason.causes and behind_reason.capacity_budget_left is None
    assert refused_reason.due_at == world.store.get(refused.job_id).next_attempt_at
    assert refused_reason.capacity_budget_left == timedelta(seconds=POLICY.capacity_max_wait_seconds - 5)
    assert {"hold", "backoff"} <= set(refused_reason.causes)


def test_an_instance_limit_in_use_is_reported_as_used_of_the_limit(world):
    world.instance_limits["ml.p4d.24xlarge"] = 2
    running = world.submit("running", job_args=P4D)
    world.launcher().run_tick()
    waiting = world.submit("waiting", job_args=P4D)

    reason = view(world).reason(waiting.job_id)

    assert world.store.get(running.job_id).status.value == "Launched"
    assert reason is not None and (reason.in_use, reason.limit, reason.at_limit) == (2, 2, True)
    assert reason.causes == ["limit"]


def test_a_job_that_is_not_queued_has_no_wait_reason(world):
    launched = world.launched("done")
    assert view(world).reason(launched.job_id) is None
    assert view(world).page().total == 0
