"""The monitor's orphan reaper (issue 21; backend/services/reaper.py): each sweep lists the
training jobs created since its cursor and stops those no job runs, with no event needed; a name
in its launch window, a stop SageMaker throttled and a listing it could not read are looked at
again by a later sweep, and the cursor never passes them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.domain.approval import ApprovalState
from backend.domain.model import Approval
from backend.domain.status import JobStatus
from backend.domain.terms import LAUNCH_LEASE, AttemptOutcome
from backend.domain.times import parse_utc
from backend.errors import StoreUnavailable
from backend.ports import TrainingState
from backend.services.monitor import SWEEP_CURSOR
from backend.services.reaper import ENTRY, MARGIN, Reaper, Verdict, verdict
from tests.unit.services.conftest import OWNER, World

S = JobStatus
T = TrainingState


def _orphan(world: World, monkeypatch: pytest.MonkeyPatch, *, retry: bool = False) -> tuple[str, str]:
    """The open root cause: the owner's stop lands inside the launcher's create, its
    StopTrainingJob before the create (nothing to stop yet), and the launcher's record of the
    create is throttled, and so is its read back of the job. (job id, the orphan's name)."""
    job = world.submit()
    transition = world.store.transition

    get = world.store.get

    def unreadable(*args, **kwargs):  # the launcher's read that would find out: throttled too
        monkeypatch.setattr(world.store, "get", get)
        raise StoreUnavailable("ProvisionedThroughputExceededException")

    def refused(*args, **kwargs):
        monkeypatch.setattr(world.store, "transition", transition)
        monkeypatch.setattr(world.store, "get", unreadable)
        raise StoreUnavailable("ProvisionedThroughputExceededException")

    def owner_stops(name: str) -> None:
        landed = world.backend.jobs.pop(name)  # the owner's stop reaches SageMaker before the create
        world.jobs.stop(job.job_id, OWNER)
        world.backend.jobs[name] = landed
        world.backend.stops.clear()  # it stopped nothing: it did not exist yet
        monkeypatch.setattr(world.store, "transition", refused)

    world.backend.during_create = owner_stops
    world.launcher().run_tick()
    name = f"{job.job_id}-a1"
    assert world.backend.jobs[name].state is T.RUNNING and world.backend.stops == []
    if retry:
        # The owner's retry, once the launcher's claim expired (one inside it waits), and its
        # stop of -a1 reaching SageMaker before -a1's create: only a create slower than the
        # launcher's timeout could land so late, and the reaper is the backstop for that too.
        world.clock.advance(LAUNCH_LEASE)
        landed = world.backend.jobs.pop(name)
        world.jobs.retry(job.job_id, OWNER)
        world.backend.jobs[name] = landed
        world.backend.stops.clear()
    return job.job_id, name


def _cursor(world: World) -> str | None:
    return ((world.store.get_record(*SWEEP_CURSOR) or {}).get("Position") or {}).get(ENTRY)


def test_an_orphan_of_a_stop_inside_the_create_is_stopped_by_the_next_sweep_without_any_event(world: World, monkeypatch):
    job_id, name = _orphan(world, monkeypatch)
    assert world.store.get(job_id).status is S.STOPPED
    report = world.monitor().sweep()
    assert world.backend.stops == [name] and world.backend.jobs[name].state is T.STOPPING
    assert (report.orphans_listed, report.orphans_stopped, report.orphans_waiting, report.orphans_unknown) == (1, 1, 0, False)
    assert world.store.get(job_id).status is S.STOPPED  # the reaper moves no job


def test_an_orphan_beside_its_jobs_next_attempt_is_stopped_and_the_next_attempt_kept(world: World, monkeypatch):
    job_id, name = _orphan(world, monkeypatch, retry=True)
    world.backend.stop_unavailable.add(name)  # the launcher's own stop before -a2 is refused...
    world.launcher().run_tick()
    assert world.store.get(job_id).status is S.RETRYING  # ...so -a2 waits
    world.backend.stop_unavailable.clear()
    world.monitor().sweep()
    assert world.backend.stops == [name]
    world.launcher().run_tick()
    world.monitor().sweep()
    second = f"{job_id}-a2"
    assert world.backend.jobs[second].state is T.RUNNING and second not in world.backend.stops


def test_a_create_in_its_launch_window_is_not_stopped_and_holds_the_cursor(world: World):
    """The create landed and the launcher has not recorded it yet (the job is claimed, its
    attempt pending): the sweep that lists it meanwhile leaves it, and lists it again."""
    job = world.submit()
    reports = []

    def sweep_inside_the_create(_name: str) -> None:
        world.clock.advance(MARGIN * 2)  # so only the waiting name keeps the cursor back
        reports.append(world.monitor().sweep())

    world.backend.during_create = sweep_inside_the_create
    world.launcher().run_tick()
    name = f"{job.job_id}-a1"
    assert world.backend.stops == [] and reports[0].orphans_waiting == 1
    assert _cursor(world) is None or parse_utc(_cursor(world)) < world.backend.created_at[name]
    world.monitor().sweep()  # launched now: kept, and the cursor passes it
    assert world.backend.stops == [] and world.store.get(job.job_id).status is S.IN_PROGRESS
    assert parse_utc(_cursor(world)) >= world.backend.created_at[name]


def test_a_stop_sagemaker_throttles_is_sent_again_by_the_next_sweep(world: World, monkeypatch):
    _, name = _orphan(world, monkeypatch)
    world.backend.stop_unavailable.add(name)
    world.clock.advance(MARGIN * 2)
    report = world.monitor().sweep()
    assert report.orphans_waiting == 1 and report.orphans_stopped == 0
    assert _cursor(world) is None or parse_utc(_cursor(world)) < world.backend.created_at[name]
    world.backend.stop_unavailable.clear()
    world.clock.advance(MARGIN * 2)
    report = world.monitor().sweep()
    assert report.orphans_stopped == 1 and world.backend.stops == [name]


def test_a_listing_sagemaker_throttles_changes_nothing_and_keeps_the_cursor(world: World, monkeypatch):
    _, name = _orphan(world, monkeypatch)
    world.store.set_record_entry(*SWEEP_CURSOR, "Position", ENTRY, "2026-11-01T00:00:00.000000Z")
    world.backend.list_unavailable = True
    report = world.monitor().sweep()
    assert report.orphans_unknown and report.orphans_listed == 0 and world.backend.stops == []
    assert _cursor(world) == "2026-11-01T00:00:00.000000Z"
    world.backend.list_unavailable = False
    assert world.monitor().sweep().orphans_stopped == 1 and world.backend.stops == [name]


def test_the_reaper_walks_the_pages_oldest_first_up_to_its_cap_and_goes_on_next_sweep(world: World):
    for i in range(5):
        world.backend.create(f"other-team-job-{i}", {})  # not ours: listed, never stopped
        world.clock.advance(timedelta(seconds=1))
    world.clock.advance(MARGIN * 2)
    reaper = Reaper(world.store, world.backend, pacer=world.pacer(), clock=world.clock, cursor=SWEEP_CURSOR, pages=2, page_size=2)
    first = reaper.reap({})
    assert first.listed == 4 and [token for _after, token in world.backend.listings] == [None, "2"]
    created = world.backend.created_at
    # Cut short by its cap: the cursor stands just before the last job it listed.
    assert parse_utc(_cursor(world)) == created["other-team-job-3"] - timedelta(milliseconds=1)
    second = reaper.reap({ENTRY: _cursor(world)})
    assert second.listed == 2 and world.backend.listings[-1] == (created["other-team-job-3"] - timedelta(milliseconds=1), None)
    assert parse_utc(_cursor(world)) == created["other-team-job-4"]  # the listing ran to its end
    assert world.backend.stops == []


def test_names_not_of_trainbots_form_or_of_no_job_in_the_table_are_left_alone(world: World):
    world.backend.create("someone-elses-training", {})
    world.backend.create("bert-abc123-a1", {})  # Trainbot's form, but no such job here
    world.clock.advance(MARGIN * 2)
    report = world.monitor().sweep()
    assert report.orphans_listed == 2 and report.orphans_stopped == 0 and world.backend.stops == []


def test_an_idle_sweep_lists_once_and_writes_no_cursor(world: World):
    job = world.launched()
    world.clock.advance(MARGIN * 2)
    world.monitor().sweep()
    cursor = _cursor(world)
    assert parse_utc(cursor) == world.backend.created_at[f"{job.job_id}-a1"]  # moved past everything it judged
    world.backend.listings.clear()
    writes = world.store.writes
    world.clock.advance(MARGIN * 2)
    report = world.monitor().sweep()
    assert len(world.backend.listings) == 1 and report.orphans_listed == 0 and _cursor(world) == cursor
    assert world.store.writes == writes


def test_the_cursor_stays_a_margin_behind_the_sweeps_start(world: World):
    """A listing may show a create some time after it: a job created just before the sweep is
    listed again by the next one."""
    job = world.launched()
    world.monitor().sweep()
    assert parse_utc(_cursor(world)) == world.clock() - MARGIN
    world.backend.listings.clear()
    world.monitor().sweep()
    assert world.backend.listings[0][0] == world.clock() - MARGIN
    assert world.backend.stops == [] and world.store.get(job.job_id).status is S.IN_PROGRESS


# --- the verdict, one case a row ------------------------------------------------------------


def _job_with(world: World, status: JobStatus, outcome: AttemptOutcome, number: int = 1, **changes):
    job = world.launched()
    attempt = job.current_attempt.model_copy(update={"number": number, "name": f"{job.job_id}-a{number}", "outcome": outcome})
    return job.model_copy(update={"status": status, "attempts": [attempt], **changes})


@pytest.mark.parametrize(
    ("status", "outcome", "current", "asked", "expected"),
    [
        (S.LAUNCHED, AttemptOutcome.RUNNING, 1, 1, Verdict.KEEP),
        (S.IN_PROGRESS, AttemptOutcome.RUNNING, 1, 1, Verdict.KEEP),
        (S.STOPPING, AttemptOutcome.RUNNING, 1, 1, Verdict.KEEP),  # the describe sweep resends its stop
        (S.NEW, AttemptOutcome.PENDING, 1, 1, Verdict.WAIT),  # claimed: the create's launch window
        (S.RETRYING, AttemptOutcome.PENDING, 2, 2, Verdict.WAIT),
        (S.STOPPED, AttemptOutcome.STOPPED, 1, 1, Verdict.STOP),
        (S.FAILED, AttemptOutcome.FAILED, 1, 1, Verdict.STOP),
        (S.COMPLETED, AttemptOutcome.COMPLETED, 1, 1, Verdict.STOP),
        (S.RETRYING, AttemptOutcome.FAILED, 1, 1, Verdict.STOP),  # waiting for its next attempt
        (S.RETRYING, AttemptOutcome.STOPPED, 1, 1, Verdict.STOP),  # stopped before launch, then retried
        (S.RETRYING, AttemptOutcome.PENDING, 2, 1, Verdict.STOP),  # an older attempt beside the claimed one
        (S.IN_PROGRESS, AttemptOutcome.RUNNING, 2, 1, Verdict.STOP),  # an older attempt beside the running one
        (S.NEW, AttemptOutcome.NOT_STARTED, 1, 1, Verdict.STOP),
        (S.IN_PROGRESS, AttemptOutcome.RUNNING, 1, 3, Verdict.KEEP),  # an attempt the item does not know
    ],
)
def test_which_running_attempts_no_job_runs(world: World, status, outcome, current, asked, expected):
    assert verdict(_job_with(world, status, outcome, current), asked) is expected


def test_a_held_or_rejected_job_runs_no_attempt(world: World):
    held = Approval(state=ApprovalState.PENDING, reasons=["needs approval"])
    rejected = Approval(state=ApprovalState.REJECTED, reasons=["needs approval"])
    assert verdict(_job_with(world, S.RETRYING, AttemptOutcome.PENDING, approval=held), 1) is Verdict.STOP
    assert verdict(_job_with(world, S.STOPPED, AttemptOutcome.STOPPED, approval=rejected), 1) is Verdict.STOP


def test_no_such_job_is_left_alone():
    assert verdict(None, 1) is Verdict.KEEP
