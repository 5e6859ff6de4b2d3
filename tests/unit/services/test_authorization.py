"""Who may change what: a job only by its owner (same user in the same workspace) or an admin,
a preset only by its creator or an admin, and `/train` only by allowed users. Each refusal
changes nothing and tells who may."""

from __future__ import annotations

import pytest

from backend.config import Settings
from backend.domain.status import JobStatus
from backend.errors import NotAuthorized
from backend.ports import TrainingState
from backend.services.jobs import Actor
from backend.services.presets import PresetBook, PresetNotYours
from tests.fakes.memory_store import MemoryJobStore
from tests.unit.services.conftest import ADMIN, COLLEAGUE, OWNER, World

S = JobStatus
ADMIN_ACTOR = Actor(team_id="T9", user_id=ADMIN)  # admins are named by user id, in any team
OTHER_TEAM = Actor(team_id="T2", user_id="U1")  # the owner's user id, in another workspace
INTRUDERS = pytest.mark.parametrize("intruder", [COLLEAGUE, OTHER_TEAM], ids=["colleague", "same-user-other-team"])
FIELDS = {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"}


def _stopped(world: World):
    job = world.submit()
    return world.jobs.stop(job.job_id, OWNER)


def _failed(world: World):
    job = world.launched(retry_budget=0)
    status = world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "AlgorithmError: boom")
    world.monitor().observe(job.job_id, 1, status)
    return world.store.get(job.job_id)


@INTRUDERS
@pytest.mark.parametrize("ended", [_stopped, _failed], ids=["stopped", "failed"])
def test_someone_elses_ended_job_cannot_be_retried_and_nothing_changes(world: World, intruder: Actor, ended):
    job = ended(world)
    writes, told = world.store.writes, list(world.notifier.sent)
    with pytest.raises(NotAuthorized) as refused:
        world.jobs.retry(job.job_id, intruder)
    assert str(refused.value) == f"only <@U1> (the owner) or an admin may change {job.job_id}"
    stored = world.store.get(job.job_id)
    assert stored.status is job.status and stored.version == job.version
    assert world.store.writes == writes and world.notifier.sent == told
    assert world.store.due_for_launch(world.clock(), 10) == []


@INTRUDERS
def test_someone_elses_running_job_cannot_be_stopped_and_nothing_is_sent(world: World, intruder: Actor):
    job = world.launched()
    with pytest.raises(NotAuthorized):
        world.jobs.stop(job.job_id, intruder)
    assert world.store.get(job.job_id).status is S.LAUNCHED
    assert world.backend.stops == []


@pytest.mark.parametrize("ended", [_stopped, _failed], ids=["stopped", "failed"])
def test_the_owner_and_an_admin_from_any_team_may_retry(world: World, ended):
    job = ended(world)
    assert world.jobs.retry(job.job_id, OWNER).status is S.RETRYING
    second = ended(world)
    retried = world.jobs.retry(second.job_id, ADMIN_ACTOR)
    assert retried.status is S.RETRYING
    assert retried.history[-1].reason == f"retry requested by <@{ADMIN}>"


def test_an_admin_may_stop_anyones_running_job(world: World):
    job = world.launched()
    stopping = world.jobs.stop(job.job_id, ADMIN_ACTOR)
    assert stopping.status is S.STOPPING and stopping.history[-1].reason == f"stopped by <@{ADMIN}>"
    assert world.backend.stops == [f"{job.job_id}-a1"]


def test_a_preset_may_be_changed_or_deleted_only_by_its_creator_or_an_admin():
    book = PresetBook(MemoryJobStore(), is_admin=lambda user: user == ADMIN)
    assert book.save("nlp", FIELDS, "UALICE") is True
    with pytest.raises(PresetNotYours) as refused:
        book.save("nlp", {**FIELDS, "instance": "ml.p4d.24xlarge"}, "UBOB")
    assert refused.value.creator == "UALICE" and refused.value.name == "nlp"
    with pytest.raises(PresetNotYours):
        book.delete("nlp", "UBOB")
    assert book.get("nlp").fields == FIELDS and book.names() == {"nlp": "UALICE"}

    assert book.save("nlp", {**FIELDS, "count": "2"}, "UALICE") is False  # the creator may
    assert book.save("nlp", {**FIELDS, "count": "4"}, ADMIN) is False  # and so may an admin
    preset = book.get("nlp")
    assert preset.fields["count"] == "4" and preset.creator == "UALICE"  # still Alice's
    book.delete("nlp", ADMIN)
    assert book.names() == {}


def test_only_allowed_users_and_admins_may_use_trainbot():
    settings = Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_ALLOWED_USERS": "U1,U2", "TRAINBOT_ADMIN_USERS": "U9"})
    assert [settings.is_allowed(u) for u in ("U1", "U2", "U9", "U3", "")] == [True, True, True, False, False]
    assert [settings.is_admin(u) for u in ("U9", "U1", "U2", "")] == [True, False, False, False]
    everyone = Settings.from_env({"JOBS_TABLE_NAME": "jobs"})
    assert everyone.is_allowed("U3") and not everyone.is_admin("U3")
