"""How the SageMaker adapter lists training jobs for the reaper (botocore's Stubber, which checks
the request and the answer against SageMaker's service model; no I/O), from the documented
ListTrainingJobs shapes (tests/fixtures/sagemaker_list_training_jobs.json)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from backend.adapters.sagemaker import SageMakerBackend
from backend.errors import BackendRefused, BackendUnavailable
from backend.ports import TrainingState
from tests.fixtures.samples import load

SAMPLE = "sagemaker_list_training_jobs.json"


def _client() -> tuple[SageMakerBackend, Stubber]:
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.activate()
    return SageMakerBackend(client), stubber


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def test_a_page_reads_as_names_creation_times_and_states_oldest_first():
    sample = load(SAMPLE)
    response = sample["response"]
    for summary in response["TrainingJobSummaries"]:  # botocore hands the adapter datetimes
        for key in ("CreationTime", "TrainingEndTime", "LastModifiedTime"):
            if key in summary:
                summary[key] = _at(summary[key])
    request = dict(sample["request"], CreationTimeAfter=_at(sample["request"]["CreationTimeAfter"]))
    backend, stubber = _client()
    stubber.add_response("list_training_jobs", response, request)
    page = backend.list_created(request["CreationTimeAfter"])
    stubber.assert_no_pending_responses()
    assert [(job.name, job.state) for job in page.jobs] == [
        ("tb-bert-k2x9pq-a1", TrainingState.COMPLETED),
        ("tb-bert-k2x9pq-a2", TrainingState.RUNNING),
        ("xgboost-2025-11-02-09-30-00-123", TrainingState.STOPPING),
    ]
    assert page.jobs[1].created_at == _at(1762074100.456) and page.next_token == "eyJwYWdlIjoyfQ=="
    assert backend.calls["ListTrainingJobs"] == 1


def test_the_next_page_carries_the_token_and_the_first_listing_has_no_lower_bound():
    backend, stubber = _client()
    expected = {"MaxResults": 100, "SortBy": "CreationTime", "SortOrder": "Ascending", "NextToken": "abc"}
    stubber.add_response("list_training_jobs", {"TrainingJobSummaries": []}, expected)
    page = backend.list_created(None, next_token="abc")
    assert page.jobs == [] and page.next_token is None


@pytest.mark.parametrize(
    ("code", "raised"),
    [("ThrottlingException", BackendUnavailable), ("InternalFailure", BackendUnavailable), ("AccessDeniedException", BackendRefused)],
)
def test_a_listing_that_failed_is_unknown_or_refused_never_empty(code, raised):
    backend, stubber = _client()
    stubber.add_client_error("list_training_jobs", service_error_code=code, service_message="no", http_status_code=400)
    with pytest.raises(raised):
        backend.list_created(None)
