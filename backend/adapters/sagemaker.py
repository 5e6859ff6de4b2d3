"""The training backend over SageMaker (boto3). SageMaker's vocabulary ends here: callers see
:class:`TrainingStatus` / :class:`TrainingState`, and typed errors whose classification the
retry policy already understands.

Endpoint: boto3 reads ``AWS_ENDPOINT_URL_SAGEMAKER`` itself (the local stand-in in tests).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backend.adapters.sagemaker_events import STATES, UnparseableEvent, event_time, training_status
from backend.domain.policy import classify_create_error
from backend.errors import AlreadyExists, BackendRefused, BackendUnavailable, CreateRefused
from backend.ports import LIST_PAGE_MAX, TrainingJobPage, TrainingJobSummary, TrainingState, TrainingStatus

_NOT_FOUND_MESSAGES = ("Requested resource not found", "does not exist", "not found")
_UNKNOWN_CODES = {"ThrottlingException", "Throttling", "InternalFailure", "ServiceUnavailable", "RequestTimeout"}
# Describe errors that asking again cannot cure (a missing permission, a request SageMaker calls
# malformed); a ValidationException that says "not found" is not one of them: the job is missing.
_REFUSED_CODES = {"AccessDeniedException", "AccessDenied", "UnauthorizedOperation", "ValidationException"}

# A DescribeTrainingJob answer and an event's ``detail`` have the same fields: one translation
# (backend.adapters.sagemaker_events) for both, whatever form their times take.
to_training_status = training_status


class SageMakerBackend:
    """:class:`backend.ports.TrainingBackend` over a boto3 ``sagemaker`` client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter = Counter()

    def create(self, name: str, request: dict[str, Any]) -> None:
        """CreateTrainingJob. Raises AlreadyExists (adopt), CreateRefused (classified)."""
        self.calls["CreateTrainingJob"] += 1
        try:
            self._client.create_training_job(**{**request, "TrainingJobName": name})
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            if code == "ResourceInUse":
                raise AlreadyExists(name) from exc
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            instance_type = request.get("ResourceConfig", {}).get("InstanceType", "")
            raise CreateRefused(
                classify_create_error(code, message, instance_type=instance_type, http_status=status)
            ) from exc
        except BotoCoreError as exc:
            # A timeout or a dropped connection: the job may or may not exist now. Classified
            # as throttling/service, so the job stays due and the next try adopts or creates.
            raise CreateRefused(classify_create_error("RequestTimeout", str(exc))) from exc

    def describe(self, name: str) -> TrainingStatus | None:
        """The attempt's status; None if SageMaker has no such job; BackendUnavailable if
        SageMaker could not say (throttled, 5xx, timeout): unknown is not failed; BackendRefused
        if SageMaker will not say (AccessDenied, a ValidationException other than not-found)."""
        self.calls["DescribeTrainingJob"] += 1
        try:
            answer = self._client.describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            if code in {"ValidationException", "ResourceNotFound"} and any(m in message for m in _NOT_FOUND_MESSAGES):
                return None
            if code in _REFUSED_CODES:
                raise BackendRefused(f"{code}: {message}") from exc
            raise BackendUnavailable(f"DescribeTrainingJob {name}: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"DescribeTrainingJob {name}: {exc}") from exc
        return to_training_status(answer)

    def stop(self, name: str) -> None:
        """StopTrainingJob. A job that already ended (or never existed) needs no stop."""
        self.calls["StopTrainingJob"] += 1
        try:
            self._client.stop_training_job(TrainingJobName=name)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in {"ValidationException", "ResourceNotFound"}:
                return
            raise BackendUnavailable(f"StopTrainingJob {name}: {error.get('Code')}: {error.get('Message')}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"StopTrainingJob {name}: {exc}") from exc

    def list_created(self, after: datetime | None, *, next_token: str | None = None, limit: int = LIST_PAGE_MAX) -> TrainingJobPage:
        """One page of ListTrainingJobs, oldest first, created after ``after``, every status.

        Not ``StatusEquals=InProgress``: SageMaker takes the page of ``MaxResults`` jobs first
        and filters it by status afterwards (the API reference's note on ListTrainingJobs), so
        a filtered page may hold none of the jobs it passed over, and a caller carrying a
        creation-time cursor could not move it past a run of ended jobs. Every status, the
        page's last creation time is known, whatever ran."""
        self.calls["ListTrainingJobs"] += 1
        request: dict[str, Any] = {"SortBy": "CreationTime", "SortOrder": "Ascending", "MaxResults": limit}
        if after is not None:
            request["CreationTimeAfter"] = after
        if next_token:
            request["NextToken"] = next_token
        try:
            answer = self._client.list_training_jobs(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            if code in _REFUSED_CODES:
                raise BackendRefused(f"ListTrainingJobs: {code}: {message}") from exc
            raise BackendUnavailable(f"ListTrainingJobs: {code}: {message}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"ListTrainingJobs: {exc}") from exc
        jobs = []
        for summary in answer.get("TrainingJobSummaries") or []:
            try:
                created = event_time(summary.get("CreationTime"))
            except UnparseableEvent:
                created = None
            name = summary.get("TrainingJobName")
            if created is None or not isinstance(name, str):
                raise BackendUnavailable(f"ListTrainingJobs: a summary without a name or creation time: {summary!r}")
            # "Deleting" (and any status this version does not know) is on its way out: not running.
            state = STATES.get(summary.get("TrainingJobStatus", ""), TrainingState.STOPPED)
            jobs.append(TrainingJobSummary(name=name, created_at=created, state=state))
        return TrainingJobPage(jobs=jobs, next_token=answer.get("NextToken") or None)
