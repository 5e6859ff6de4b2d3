"""What the launcher asks SageMaker to create for an attempt, and what the job's history says
about it."""

from __future__ import annotations

from backend.domain.status import JobStatus
from tests.unit.services.conftest import World

S = JobStatus


def test_the_training_job_created_carries_the_jobs_spec_under_the_attempts_name(world: World):
    job = world.launched()
    name = f"{job.job_id}-a1"
    request = world.backend.requests[name]
    assert request["TrainingJobName"] == name
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
    assert request["HyperParameters"] == {"lr": "3e-5"}
    assert request["RoleArn"] == "arn:aws:iam::123456789012:role/SageMakerRole"
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}


def test_a_launch_is_told_in_the_history_as_the_training_job_it_created(world: World):
    job = world.launched()
    stored = world.store.get(job.job_id)
    assert stored.status is S.LAUNCHED and stored.history[-1].reason == f"created {job.job_id}-a1"
