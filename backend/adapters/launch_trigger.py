"""Start the launcher now: an asynchronous Lambda Invoke of the launcher function.

``InvocationType=Event``: Lambda queues the event and answers 202 at once; with the launcher's
reserved concurrency of 1, an invocation that finds it busy waits in Lambda's queue (retried
on throttling) until MaximumEventAgeInSeconds. boto3 reads ``AWS_ENDPOINT_URL_LAMBDA``, which
points local mode and tests at the Lambda Invoke stand-in.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import BackendUnavailable


class LambdaLaunchTrigger:
    """:class:`backend.ports.LaunchTrigger` over Lambda's Invoke API."""

    def __init__(self, client: Any, function_name: str, payload: dict[str, Any]) -> None:
        self._client = client
        self._function = function_name
        self._payload = dict(payload)

    def start_launcher(self, job_id: str | None = None) -> None:
        payload = {**self._payload, "jobId": job_id} if job_id else self._payload
        try:
            self._client.invoke(FunctionName=self._function, InvocationType="Event", Payload=json.dumps(payload).encode())
        except (ClientError, BotoCoreError) as exc:
            raise BackendUnavailable(f"could not invoke {self._function}: {exc}") from exc
