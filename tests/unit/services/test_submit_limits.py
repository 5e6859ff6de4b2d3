"""Submit against TRAINBOT_INSTANCE_LIMITS: a job that no type of its list could ever fit is
refused at submit, naming the limit and the request, before anything is registered."""

from __future__ import annotations

import pytest

from backend.errors import InvalidRequest
from backend.services.presets import PresetBook
from backend.services.submit import SubmitService
from tests.unit.services.conftest import OWNER, World

FIELDS = {
    "name": "bert",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.p4d.24xlarge",
    "count": "4",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
}


def _submissions(world: World, limits: dict[str, int]) -> SubmitService:
    return SubmitService(
        world.jobs,
        world.store,
        PresetBook(world.store, is_admin=lambda user: False),
        clock=world.clock,
        sweep_confirm_size=100,
        sweep_max_size=2000,
        instance_limits=limits,
    )


def test_a_job_larger_than_its_types_instance_limit_is_refused_at_submit_naming_limit_and_request(world: World):
    with pytest.raises(InvalidRequest) as refused:
        _submissions(world, {"ml.p4d.24xlarge": 2}).submit(FIELDS, OWNER, token="t-1")
    assert refused.value.problems == [
        "count 4 can never run: TRAINBOT_INSTANCE_LIMITS ml.p4d.24xlarge allows 2 instances in use at once; "
        "ask for fewer instances or another instance type"
    ]
    assert world.store.ready_jobs(None) == []


def test_a_sweep_too_large_for_its_type_is_refused_before_any_job_is_registered(world: World):
    with pytest.raises(InvalidRequest) as refused:
        _submissions(world, {"ml.p4d.24xlarge": 2}).sweep({**FIELDS, "hp.lr": "1e-5,3e-5"}, OWNER, token="t-2")
    assert [p.split(":")[0] for p in refused.value.problems] == ["count 4 can never run"]
    assert world.store.ready_jobs(None) == []


def test_a_job_that_fits_one_type_of_its_fallback_list_is_registered(world: World):
    fields = {**FIELDS, "instance": "ml.p5.48xlarge,ml.p4d.24xlarge"}
    registered = _submissions(world, {"ml.p5.48xlarge": 2}).submit(fields, OWNER, token="t-3")
    assert registered.created and registered.job.instance_choices == ["ml.p5.48xlarge", "ml.p4d.24xlarge"]
