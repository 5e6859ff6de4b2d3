"""Start the launcher now: an asynchronous Lambda Invoke of the launcher function.

``InvocationType=Event``: Lambda queues the event and answers 202 at once; with the launcher's
reserved concurrency of 1, an invocation that finds it busy waits in Lambda's queue (retried
on throttling) until MaximumEventAgeInSeconds. boto3 reads ``AWS_ENDPOINT_URL_LAMBDA``, which
points local mode and tests at the Lambda Invoke stand-in. :func:`invoke_event` is the one
asynchronous Invoke every trigger (this one, the chart's) makes.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backend.errors import BackendUnavailable


def invoke_event(client: Any, function_name: str, payload: dict[str, Any]) -> None:
    """Queue ``payload`` for ``function_name`` (InvocationType=Event); BackendUnavailable if
    Lambda did not take it."""
    try:
        client.invoke(FunctionName=function_name, InvocationType="Event", Payload=json.dumps(payload).encode())
    except (ClientError, BotoCoreError) as exc:
        raise BackendUnavailable(f"could not invoke {function_name}: {exc}") from exc


class LambdaLaunchTrigger:
    """:class:`backend.ports.LaunchTrigger` over Lambda's Invoke API."""

    def __init__(self, client: Any, function_name: str, payload: dict[str, Any]) -> None:
        self._client = client
        self._function = function_name
        self._payload = dict(payload)

    def start_launcher(self, job_id: str | None = None) -> None:
        payload = {**self._payload, "jobId": job_id} if job_id else self._payload
        invoke_event(self._client, self._function, payload)
