"""Training plans through the services: the launcher's plan gate (wait before the start and
when full, create on the plan's ARN, refuse or fall back on-demand), the bounded plan reads,
the monitor's check that the job really runs on its plan, and the submit checks."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import AttemptOutcome, FailureClass
from backend.domain.plans import PlanState, TrainingPlan
from backend.domain.status import JobStatus
from backend.ports import TrainingState, TrainingStatus
from backend.services.launcher import Launcher
from backend.services.plans import PlanBook
from tests.conftest import T0, job_args
from tests.unit.services.conftest import POLICY, World

ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/p5-dec"


class FakePlans:
    """:class:`backend.ports.TrainingPlans` in memory, counting its reads."""

    def __init__(self, *plans: TrainingPlan) -> None:
        self.by_name = {p.name: p for p in plans}
        self.reads = 0

    def plans(self) -> list[TrainingPlan]:
        self.reads += 1
        return list(self.by_name.values())

    def plan(self, name: str) -> TrainingPlan | None:
        return self.by_name.get(name)


def p5(state: PlanState = PlanState.ACTIVE, *, start=T0 - timedelta(hours=1), total: int = 2, in_use: int = 0) -> TrainingPlan:
    return TrainingPlan("p5-dec", ARN, state, start, start + timedelta(days=3), "ml.p5.48xlarge", total, in_use)


def p5_args(count: int = 1, runtime: int = 3600):
    return job_args(
        ResourceConfig={"InstanceType": "ml.p5.48xlarge", "InstanceCount": count, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": runtime},
    )


def book(world: World, source: FakePlans, team_plans: dict[str, str] | None = None) -> PlanBook:
    return PlanBook(world.store, source, clock=world.clock, team_plans=team_plans or {}, team_of=lambda user: {"U1": "nlp"}.get(user, user))


def launcher(world: World, plans: PlanBook) -> Launcher:
    return Launcher(
        world.store, world.backend, world.dispatcher, policy=POLICY, instance_limits={}, pacer=world.pacer(), clock=world.clock, rng=world.rng, plans=plans
    )


def test_a_job_of_a_scheduled_plan_waits_with_its_start_and_is_created_on_the_plan_once_it_is_active(world: World) -> None:
    source = FakePlans(p5(PlanState.SCHEDULED, start=T0 + timedelta(hours=24)))  # Tue 09:00 UTC
    plans = book(world, source)
    job = world.submit("bert", job_args=p5_args(), plan="p5-dec")

    report = launcher(world, plans).run_tick()

    assert world.backend.created == []
    assert report.plan_waits == 1
    assert world.store.get(job.job_id).waiting == "waiting: plan `p5-dec` starts Tue 09:00 UTC"

    world.clock.advance(timedelta(hours=25))
    source.by_name["p5-dec"] = p5(PlanState.ACTIVE, start=T0 + timedelta(hours=24))
    launcher(world, plans).run_tick()

    name = f"{job.job_id}-a1"
    assert world.backend.created == [name]
    assert world.backend.requests[name]["ResourceConfig"]["TrainingPlanArn"] == ARN
    stored = world.store.get(job.job_id)
    assert stored.status is JobStatus.LAUNCHED and stored.attempts[0].plan == "p5-dec"
    assert "on plan `p5-dec`" in stored.history[-1].reason


def test_a_full_plan_holds_the_next_job_until_its_instances_free_and_reads_sagemaker_once_a_minute(world: World) -> None:
    source = FakePlans(p5(total=2))
    plans = book(world, source)
    first = world.submit("one", job_args=p5_args(count=2), plan="p5-dec")
    second = world.submit("two", job_args=p5_args(count=1), plan="p5-dec")

    launcher(world, plans).run_tick()
    launcher(world, plans).run_tick()  # the same minute: the board record answers

    assert world.backend.created == [f"{first.job_id}-a1"]
    assert "plan `p5-dec` is full (2 of 2" in (world.store.get(second.job_id).waiting or "")
    assert source.reads == 1
    assert plans.board() is not None and plans.board().waiting == {"p5-dec": 1}

    world.backend.finish(f"{first.job_id}-a1", TrainingState.COMPLETED)
    world.monitor().sweep()
    world.clock.advance(timedelta(minutes=2))
    launcher(world, plans).run_tick()

    assert world.backend.created[-1] == f"{second.job_id}-a1"
    assert source.reads == 2


def test_a_job_the_plan_cannot_run_fails_with_the_reason_unless_it_falls_back_on_demand(world: World) -> None:
    plans = book(world, FakePlans(p5(total=1, in_use=1)))
    wrong_type = world.submit("wrong", job_args=job_args(), plan="p5-dec")
    full_but_fallback = world.submit("spill", job_args=p5_args(), plan="p5-dec", plan_fallback=True)

    launcher(world, plans).run_tick()

    failed = world.store.get(wrong_type.job_id)
    assert failed.status is JobStatus.FAILED
    assert "reserves ml.p5.48xlarge, not ml.g5.xlarge" in failed.history[-1].reason
    spilled = world.store.get(full_but_fallback.job_id)
    assert spilled.status is JobStatus.LAUNCHED and spilled.attempts[0].plan is None
    assert "TrainingPlanArn" not in world.backend.requests[spilled.attempts[0].name]["ResourceConfig"]
    assert "on-demand (plan_fallback)" in spilled.history[-1].reason


def test_the_monitor_tells_the_thread_when_sagemaker_runs_a_plan_job_elsewhere(world: World) -> None:
    plans = book(world, FakePlans(p5()))
    job = world.submit("bert", job_args=p5_args(), plan="p5-dec")
    launcher(world, plans).run_tick()
    name = f"{job.job_id}-a1"

    world.monitor().observe(job.job_id, 1, TrainingStatus(name=name, state=TrainingState.RUNNING, training_plan=""))

    stored = world.store.get(job.job_id)
    assert stored.status is JobStatus.IN_PROGRESS
    assert stored.attempts[0].off_plan is True and stored.attempts[0].outcome is AttemptOutcome.RUNNING
    assert "not on plan `p5-dec`: SageMaker runs it on on-demand capacity" in stored.history[-1].reason


def test_a_job_on_its_plan_is_not_flagged(world: World) -> None:
    plans = book(world, FakePlans(p5()))
    job = world.submit("bert", job_args=p5_args(), plan="p5-dec")
    launcher(world, plans).run_tick()

    world.monitor().observe(job.job_id, 1, TrainingStatus(name=f"{job.job_id}-a1", state=TrainingState.RUNNING, training_plan="p5-dec"))

    stored = world.store.get(job.job_id)
    assert stored.status is JobStatus.IN_PROGRESS and stored.attempts[0].off_plan is None


def test_the_team_default_plan_applies_and_submit_refuses_what_the_plan_cannot_run(world: World) -> None:
    plans = book(world, FakePlans(p5()), team_plans={"nlp": "p5-dec"})
    assert plans.plan_for(None, "U1") == "p5-dec"
    assert plans.plan_for("none", "U1") is None
    assert plans.plan_for(None, "U9") is None
    assert plans.submit_problems("p5-dec", "ml.p5.48xlarge", 1, 3600) == []  # no board yet: the launcher judges

    world.submit("warm", job_args=p5_args(), plan="p5-dec")
    launcher(world, plans).run_tick()  # writes the board

    assert plans.submit_problems("p5-dec", "ml.p5.48xlarge", 1, 3600) == []
    too_long = plans.submit_problems("p5-dec", "ml.p5.48xlarge", 1, 5 * 24 * 3600)
    assert too_long and "would not finish before it" in too_long[0]


def _monitor(world: World, plans: PlanBook):
    from backend.services.monitor import Monitor
    from tests.unit.services.conftest import POLICY

    return Monitor(world.store, world.backend, world.dispatcher, policy=POLICY, pacer=world.pacer(), clock=world.clock, rng=world.rng, plan_board=plans.board)


def test_a_plan_job_that_fails_once_sagemaker_stops_the_plans_jobs_is_labelled_by_the_plans_end_not_as_its_codes_failure(world: World) -> None:
    # Its instances taken from under it, the training code may die with an AlgorithmError: the
    # plan's end is the cause all the same, and no algorithm retry is charged.
    plans = book(world, FakePlans(p5()))  # ends T0 + 71 h; SageMaker stops its jobs from T0 + 70.5 h
    early = world.submit("early", job_args=p5_args(runtime=3600), plan="p5-dec")
    late = world.submit("late", job_args=p5_args(runtime=3600), plan="p5-dec")
    launcher(world, plans).run_tick()
    crash = 'AlgorithmError: ExecuteUserScriptError: ExitCode 137 ErrorMessage "killed"'

    world.backend.finish(f"{early.job_id}-a1", TrainingState.FAILED, crash, ended_at=T0 + timedelta(minutes=30))
    world.clock.advance(timedelta(hours=70, minutes=35))
    world.backend.finish(f"{late.job_id}-a1", TrainingState.FAILED, crash, ended_at=world.clock())
    _monitor(world, plans).sweep()

    own_fault = world.store.get(early.job_id)
    assert own_fault.status is JobStatus.RETRYING and own_fault.attempts[0].failure_class is FailureClass.ALGORITHM
    ended = world.store.get(late.job_id)
    assert ended.status is JobStatus.STOPPED and ended.algorithm_failures == 0
    assert ended.attempts[0].failure_class is FailureClass.PLAN_ENDED and ended.attempts[0].outcome is AttemptOutcome.STOPPED
    assert ended.history[-1].reason.startswith("stopped by the end of plan `p5-dec`")
    assert "(SageMaker said: AlgorithmError" in ended.history[-1].reason


def test_without_the_plans_board_an_end_is_judged_as_any_other(world: World) -> None:
    plans = book(world, FakePlans(p5()))
    job = world.submit("late", job_args=p5_args(runtime=3600), plan="p5-dec")
    launcher(world, plans).run_tick()
    world.clock.advance(timedelta(hours=70, minutes=35))
    world.backend.finish(f"{job.job_id}-a1", TrainingState.STOPPED, ended_at=world.clock())

    world.monitor().sweep()  # a monitor that cannot read the plans labels nothing on a guess

    stopped = world.store.get(job.job_id)
    assert stopped.status is JobStatus.STOPPED and stopped.attempts[0].failure_class is FailureClass.STOPPED


def test_while_jobs_run_on_a_plan_the_launcher_keeps_its_end_current_so_an_extension_is_seen(world: World) -> None:
    source = FakePlans(p5())
    plans = book(world, source)
    world.submit("bert", job_args=p5_args(), plan="p5-dec")
    launcher(world, plans).run_tick()  # launched: nothing of a plan is queued any more
    board = plans.board()
    assert source.reads == 1 and board is not None and board.plans["p5-dec"].end == T0 + timedelta(hours=71)

    extended = p5()
    source.by_name["p5-dec"] = TrainingPlan(extended.name, ARN, PlanState.ACTIVE, extended.start, extended.end + timedelta(days=7), "ml.p5.48xlarge", 2, 1)
    launcher(world, plans).run_tick()  # the same minute: the board answers
    assert source.reads == 1
    world.clock.advance(timedelta(minutes=2))
    launcher(world, plans).run_tick()

    board = plans.board()
    assert source.reads == 2 and board is not None and board.plans["p5-dec"].end == T0 + timedelta(days=10, hours=-1)
