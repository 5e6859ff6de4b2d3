"""Instance-type fallback on the in-memory store (issue 13, part 3): a job listing
``instance=ml.p5.48xlarge,ml.p4d.24xlarge`` moves its next attempt to the next type on a
capacity or quota error, counts against that type, comes back to its first choice when it has
room, and a reclaimed attempt keeps the type it was claimed on. Also: why a parked job waits is
written on its item, and its card refreshed, once per change of reason, never once per tick."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import AttemptOutcome, FailureClass, Job
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.ports import TrainingState
from backend.services.launcher import HOLDS_KEY
from backend.services.notify import Dispatcher
from tests.conftest import job_args
from tests.fakes.notifier import RecordingNotifier
from tests.unit.services.conftest import POLICY, World

S = JobStatus
F = FailureClass
P5 = "ml.p5.48xlarge"
P4D = "ml.p4d.24xlarge"


def _args(instance_type: str = P5, count: int = 1):
    return job_args(ResourceConfig={"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 50})


def _fallback_job(world: World, name: str = "fb", count: int = 1, **kwargs) -> Job:
    return world.submit(name, job_args=_args(P5, count), fallback_types=[P4D], **kwargs)


def _created_type(world: World, name: str) -> str:
    return world.backend.requests[name]["ResourceConfig"]["InstanceType"]


def _end(world: World, job: Job, state: TrainingState, reason: str = "") -> None:
    stored = world.store.get(job.job_id)
    world.backend.finish(stored.current_attempt.name, state, reason)
    world.monitor().sweep()


def test_a_quota_refusal_on_the_first_type_sends_the_next_attempt_to_the_next_type_at_once(world: World):
    job = _fallback_job(world)
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: quota in use")
    world.launcher().run_tick()

    refused = world.store.get(job.job_id)
    assert refused.status is S.RETRYING
    # Another type may have room: no backoff for the job, but the refused type is held.
    assert refused.next_attempt_at == world.clock()
    assert P5 in world.store.get_record(RecordKind.HOLDS, HOLDS_KEY)["Holds"]
    assert refused.history[-1].reason == f"{P5} refused, the next attempt may use {P4D}: ResourceLimitExceeded: quota in use"
    assert refused.attempts[0].instance_type == P5 and refused.attempts[0].outcome is AttemptOutcome.NOT_STARTED

    report = world.launcher().run_tick()
    launched = world.store.get(job.job_id)
    name = f"{job.job_id}-a2"
    assert report.launched == 1 and world.backend.created == [name]
    assert _created_type(world, name) == P4D and launched.current_attempt.instance_type == P4D
    assert launched.status is S.LAUNCHED and launched.running_instance_type == P4D
    assert f"created {name} on {P4D} (fallback: {P5} is held until" in launched.history[-1].reason


def test_the_next_attempt_goes_back_to_the_first_choice_once_it_has_room(world: World):
    job = _fallback_job(world, retry_budget=2)
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: quota in use")
    world.launcher().run_tick()
    world.launcher().run_tick()  # attempt 2, on the fallback type
    _end(world, job, TrainingState.FAILED, "AlgorithmError: loss is nan")
    assert world.store.get(job.job_id).status is S.RETRYING

    world.clock.advance(timedelta(seconds=POLICY.max_seconds + 1))  # the hold and the backoff pass
    world.launcher().run_tick()
    back = world.store.get(job.job_id)
    name = f"{job.job_id}-a3"
    assert back.status is S.LAUNCHED and _created_type(world, name) == P5
    assert [a.instance_type for a in back.attempts] == [P5, P4D, P5]
    assert f"on {P5} (back to its first choice" in back.history[-1].reason


def test_a_capacity_error_while_running_moves_the_next_attempt_to_the_next_type(world: World):
    job = _fallback_job(world)
    world.launcher().run_tick()
    assert _created_type(world, f"{job.job_id}-a1") == P5
    _end(world, job, TrainingState.FAILED, "CapacityError: Unable to provision requested ML compute capacity")
    assert world.store.get(job.job_id).status is S.RETRYING

    world.clock.advance(timedelta(seconds=POLICY.max_seconds + 1))
    world.launcher().run_tick()
    # No hold on p5 (the create was accepted), but the attempt after its capacity error passes over it.
    assert _created_type(world, f"{job.job_id}-a2") == P4D
    assert "ran out of capacity or quota on attempt 1" in world.store.get(job.job_id).history[-1].reason


def test_a_job_without_a_fallback_list_keeps_its_one_type_after_a_capacity_error(world: World):
    job = world.submit("plain", job_args=_args(P5))
    world.launcher().run_tick()
    _end(world, job, TrainingState.FAILED, "CapacityError: Unable to provision requested ML compute capacity")
    world.clock.advance(timedelta(seconds=POLICY.max_seconds + 1))
    world.launcher().run_tick()
    stored = world.store.get(job.job_id)
    assert _created_type(world, f"{job.job_id}-a2") == P5 and stored.history[-1].reason == f"created {job.job_id}-a2"
    assert stored.current_attempt.instance_type is None  # nothing new on an ordinary job


def test_a_fallback_attempt_counts_against_its_own_types_limit(world: World):
    world.instance_limits.update({P5: 1, P4D: 1})
    world.launched("p5-user", job_args=_args(P5))
    fb = _fallback_job(world)
    world.launcher().run_tick()
    assert world.store.get(fb.job_id).running_instance_type == P4D

    plain = world.submit("p4d-user", job_args=_args(P4D))
    report = world.launcher().run_tick()
    assert report.at_limit == 1 and world.store.get(plain.job_id).status is S.NEW


def test_a_reclaimed_attempt_is_created_on_the_type_it_was_claimed_on(world: World):
    world.instance_limits.update({P5: 1})
    blocker = world.launched("p5-user", job_args=_args(P5))
    fb = _fallback_job(world)
    world.backend.unavailable = True  # the claim is written, then the create never answers
    world.launcher().run_tick()
    claimed = world.store.get(fb.job_id)
    assert claimed.current_attempt.outcome is AttemptOutcome.PENDING and claimed.current_attempt.instance_type == P4D

    # p5 frees up before the lease expires; the next launcher must still use p4d for this name.
    world.backend.unavailable = False
    _end(world, blocker, TrainingState.COMPLETED)
    world.clock.advance(timedelta(minutes=6))
    newcomer = world.submit("p5-newcomer", job_args=_args(P5))
    world.launcher().run_tick()
    name = f"{fb.job_id}-a1"
    assert world.backend.created.count(name) == 1 and _created_type(world, name) == P4D
    assert world.store.get(fb.job_id).status is S.LAUNCHED
    # ...and it counts against p4d, not p5: the freed p5 instance goes to the next job.
    assert world.store.get(newcomer.job_id).status is S.LAUNCHED


def test_a_parked_fallback_job_is_read_again_when_any_of_its_types_has_room(world: World):
    world.instance_limits.update({P5: 1, P4D: 1})
    world.launched("p5-user", job_args=_args(P5))
    p4d_job = world.launched("p4d-user", job_args=_args(P4D))
    fb = _fallback_job(world)
    report = world.launcher().run_tick()
    parked = world.store.get(fb.job_id)
    assert report.parked == 1 and parked.parked_at is not None
    assert world.store.parked_types() == [f"{P5},{P4D}"]
    assert parked.waiting == f"waiting: {P5} is at its limit of 1 instances in use; {P4D} is at its limit of 1 instances in use"

    _end(world, p4d_job, TrainingState.COMPLETED)  # only the fallback type frees up
    world.launcher().run_tick()
    launched = world.store.get(fb.job_id)
    assert launched.status is S.LAUNCHED and launched.running_instance_type == P4D
    assert launched.waiting is None and launched.parked_at is None


class EagerCard(RecordingNotifier):
    """Stands for the Slack card notifier: idempotent, refreshed eagerly."""

    eager = True


def _with_card(world: World) -> EagerCard:
    card = EagerCard("slack-card")
    world.store.set_notify_targets([world.notifier.name, card.name])
    world.dispatcher = Dispatcher(world.store, [world.notifier, card], world.clock)
    return card


def test_a_parked_jobs_wait_reason_costs_no_write_and_no_card_update_per_tick(world: World):
    card = _with_card(world)
    world.instance_limits.update({P5: 1})
    world.launched("p5-user", job_args=_args(P5))
    waiting = world.submit("waits", job_args=_args(P5))
    card.sent.clear()

    writes = world.store.writes
    world.launcher().run_tick()
    stored = world.store.get(waiting.job_id)
    assert stored.waiting == f"waiting: {P5} is at its limit of 1 instances in use"
    # Folded into the park write the launcher made anyway; the card is refreshed once.
    assert world.store.writes - writes == 1
    assert [sent for sent in card.sent if sent[0] == waiting.job_id] == [(waiting.job_id, stored.last_seq, S.NEW)]

    writes, refreshed = world.store.writes, len(card.sent)
    for _ in range(10):
        world.clock.advance(timedelta(minutes=1))
        world.launcher().run_tick()
    assert world.store.writes == writes and len(card.sent) == refreshed


def test_a_changed_wait_reason_is_written_and_shown_once_per_change(world: World):
    card = _with_card(world)
    world.instance_limits.update({P5: 2})
    world.launched("p5-user", job_args=_args(P5))  # 1 of 2 in use: room for 1, not for 2
    two = world.submit("two", job_args=_args(P5, count=2))
    world.launcher().run_tick()
    assert world.store.get(two.job_id).waiting == f"waiting: {P5} is at its limit of 2 instances in use"

    # Read again every tick (its type shows room), still blocked, same reason: nothing written.
    writes, refreshed = world.store.writes, len(card.sent)
    for _ in range(5):
        world.clock.advance(timedelta(minutes=1))
        world.launcher().run_tick()
    assert world.store.writes == writes and len(card.sent) == refreshed

    # The reason it was parked with differs from today's (an older hold, say): one write and
    # one card refresh bring it up to date, and then nothing more.
    world.store.update(world.store.get(two.job_id), at=world.clock(), waiting=f"waiting: {P5} is held until 10:00:00 UTC")
    writes, refreshed = world.store.writes, len(card.sent)
    world.launcher().run_tick()
    world.launcher().run_tick()
    assert world.store.get(two.job_id).waiting == f"waiting: {P5} is at its limit of 2 instances in use"
    assert world.store.writes - writes == 1 and len(card.sent) - refreshed == 1


def test_a_zero_quota_on_the_first_type_falls_back_instead_of_failing_the_job(world: World):
    from backend.domain.policy import classify_create_error
    from backend.errors import CreateRefused

    zero = "The account-level service limit 'ml.p5.48xlarge for training job usage' is 0 Instances, with current utilization of 0 Instances"
    fb = _fallback_job(world)
    plain = world.submit("plain", job_args=_args(P5))
    for _ in range(2):
        world.backend.refusals.append(CreateRefused(classify_create_error("ResourceLimitExceeded", zero, instance_type=P5)))
    world.launcher().run_tick()
    assert world.store.get(fb.job_id).status is S.RETRYING
    assert world.store.get(plain.job_id).status is S.NEW  # p5 is held: it is not tried again this tick

    world.clock.advance(timedelta(seconds=POLICY.max_seconds + 1))
    world.launcher().run_tick()
    assert world.store.get(fb.job_id).running_instance_type == P4D
    assert world.store.get(plain.job_id).status is S.FAILED  # one type only: a zero quota fails it, as before


# --- a job larger than its types' instance limits -----------------------------------------------


def test_a_job_asking_for_more_instances_than_its_types_limit_fails_at_once_and_a_job_that_fits_launches(world: World):
    world.instance_limits[P4D] = 2
    too_big = world.submit("big", job_args=_args(P4D, count=4))
    fits = world.submit("fits", job_args=_args(P4D, count=2), user="U2")
    report = world.launcher().run_tick()

    failed = world.store.get(too_big.job_id)
    assert failed.status is S.FAILED and failed.parked_at is None
    assert failed.history[-1].reason == (
        f"count 4 can never run: TRAINBOT_INSTANCE_LIMITS {P4D} allows 2 instances in use at once; "
        "ask for fewer instances or another instance type"
    )
    assert report.failed == 1 and report.launched == 1 and world.store.get(fits.job_id).status is S.LAUNCHED


def test_a_job_parked_before_its_limit_was_known_to_be_too_small_fails_when_read_again(world: World):
    world.instance_limits[P4D] = 8
    running = world.launched("running", job_args=_args(P4D, count=8))
    parked = world.submit("big", job_args=_args(P4D, count=4), user="U2")
    world.launcher().run_tick()
    assert world.store.get(parked.job_id).parked_at is not None

    world.instance_limits[P4D] = 2  # a redeploy lowered the limit below its request
    _end(world, running, TrainingState.COMPLETED)
    world.launcher().run_tick()
    assert world.store.get(parked.job_id).status is S.FAILED


def test_a_fallback_list_fails_for_its_size_only_when_no_type_of_it_could_ever_fit(world: World):
    world.instance_limits.update({P5: 2, P4D: 4})
    fits_second = _fallback_job(world, "fits-second", count=4)
    fits_none = _fallback_job(world, "fits-none", count=8, user="U2")
    world.launcher().run_tick()

    assert world.store.get(fits_second.job_id).running_instance_type == P4D
    failed = world.store.get(fits_none.job_id)
    assert failed.status is S.FAILED
    assert f"{P5} allows 2, {P4D} allows 4" in failed.history[-1].reason
