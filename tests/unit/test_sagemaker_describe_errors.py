"""How the SageMaker adapter names a DescribeTrainingJob error (botocore's Stubber answers;
no I/O): a refusal for good, a service error, and a missing job are three different things."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from backend.adapters.sagemaker import SageMakerBackend
from backend.errors import BackendRefused, BackendUnavailable


def _answering(code: str, message: str, http_status: int = 400) -> tuple[SageMakerBackend, Stubber]:
    client = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    stubber.add_client_error("describe_training_job", service_error_code=code, service_message=message, http_status_code=http_status)
    stubber.activate()
    return SageMakerBackend(client), stubber


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("AccessDeniedException", "User is not authorized to perform: sagemaker:DescribeTrainingJob"),
        ("ValidationException", "1 validation error detected: Value at 'trainingJobName' failed to satisfy constraint"),
    ],
)
def test_a_describe_refused_for_good_raises_backend_refused(code, message):
    backend, stubber = _answering(code, message)
    with pytest.raises(BackendRefused, match=code):
        backend.describe("tb-x-a1")
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(("code", "status"), [("ThrottlingException", 400), ("InternalFailure", 500), ("ServiceUnavailable", 503)])
def test_a_throttled_or_failed_describe_stays_unknown(code, status):
    backend, _ = _answering(code, "try again", status)
    with pytest.raises(BackendUnavailable):
        backend.describe("tb-x-a1")


def test_a_describe_of_a_missing_job_answers_none():
    backend, _ = _answering("ValidationException", "Requested resource not found.")
    assert backend.describe("tb-x-a1") is None
