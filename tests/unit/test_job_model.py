"""JobArgs validation (good requests pass, bad ones name the field) and job ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from backend.domain.model import (
    JOB_ID_MAX,
    SAGEMAKER_NAME,
    attempt_name,
    label_of,
    new_job_id,
    parse_attempt_name,
)
from tests.conftest import job_args


def labels(exc: ValidationError) -> set[str]:
    return {label_of(error["loc"]) for error in exc.errors()}


def test_a_good_request_passes_and_becomes_a_create_training_job_request():
    request = job_args().to_request("bert-abc123-a1")
    assert request["TrainingJobName"] == "bert-abc123-a1"
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
    assert request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://data-bucket/train"
    assert "CheckpointConfig" not in request


def test_spot_training_with_max_wait_and_checkpoint_passes():
    args = job_args(
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        CheckpointConfig={"S3Uri": "s3://ckpt-bucket/bert"},
        Tags=[{"Key": "project", "Value": "nlp"}],
    )
    assert args.to_request("x-a1")["CheckpointConfig"] == {"S3Uri": "s3://ckpt-bucket/bert"}


@pytest.mark.parametrize(
    ("overrides", "label", "words"),
    [
        ({"ResourceConfig": {"InstanceType": "ml.g5.huge"}}, "instance", "not a SageMaker training instance type"),
        ({"ResourceConfig": {"InstanceType": "g5.xlarge"}}, "instance", "did you mean ml.g5.xlarge"),
        ({"ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 0}}, "count", "between 1 and 100"),
        ({"ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 10000}}, "count", "between 1 and 100"),
        ({"OutputDataConfig": {"S3OutputPath": "https://bucket/x"}}, "output", "not an S3 URI"),
        ({"InputDataConfig": [{"DataSource": {"S3DataSource": {"S3Uri": "/local/data"}}}]}, "input", "not an S3 URI"),
        ({"RoleArn": "SageMakerRole"}, "role", "not an IAM role ARN"),
        ({"AlgorithmSpecification": {"TrainingImage": "not an image"}}, "image", "container image URI"),
        ({"HyperParameters": {f"p{i}": "1" for i in range(101)}}, "hp", "at most 100 hyperparameters"),
        ({"HyperParameters": {"lr": "x" * 2501}}, "hp", "SageMaker allows 2500"),
        ({"HyperParameters": {"k" * 257: "1"}}, "hp", "1 to 256 characters"),
        ({"StoppingCondition": {"MaxRuntimeInSeconds": 0}}, "max_runtime", "between 1 second and 28 days"),
        ({"EnableManagedSpotTraining": True}, "request", "spot training needs max_wait"),
        ({"Tags": [{"Key": "k"}] * 51}, "tags", "at most 50 tags"),
    ],
)
def test_a_bad_request_fails_with_a_message_naming_the_field(overrides, label, words):
    with pytest.raises(ValidationError) as info:
        job_args(**overrides)
    assert label in labels(info.value)
    assert words in str(info.value)


def test_unknown_request_fields_are_refused():
    with pytest.raises(ValidationError):
        job_args(TrainingJobName="sneaky")


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=40)))
def test_every_job_id_leaves_room_for_attempt_suffixes_in_a_sagemaker_name(name, token):
    job_id = new_job_id(name, token)
    assert len(job_id) <= JOB_ID_MAX
    assert SAGEMAKER_NAME.match(attempt_name(job_id, 999))
    assert parse_attempt_name(attempt_name(job_id, 12)) == (job_id, 12)


def test_a_client_token_makes_the_job_id_repeatable_and_distinct_tokens_differ():
    assert new_job_id("bert lr3", "trigger-1") == new_job_id("bert lr3", "trigger-1")
    assert new_job_id("bert lr3", "trigger-1") != new_job_id("bert lr3", "trigger-2")
    assert new_job_id("bert lr3", "trigger-1").startswith("bert-lr3-")


def test_names_that_are_not_ours_do_not_parse_as_attempts():
    assert parse_attempt_name("someone-elses-job") is None
    assert parse_attempt_name("x-a1234") is None
