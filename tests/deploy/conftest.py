"""The deploy tests' shared, expensive pieces, computed once per session: the validated and
transformed template, and the AWS calls each handler made in the recorded scenarios."""

from __future__ import annotations

import pytest

from infra.deploy.validate import Result, validate
from tests.deploy.recording import CallRecorder, record_backend, record_bot


@pytest.fixture(scope="session")
def validation() -> Result:
    return validate()


@pytest.fixture(scope="session")
def transformed(validation: Result) -> dict:
    assert validation.transformed is not None, [str(p) for p in validation.problems]
    return validation.transformed


@pytest.fixture(scope="session")
def recorded_calls(recording: CallRecorder) -> dict[str, set[tuple[str, str, bool]]]:
    """``{function logical id: {(service, operation, with_tags)}}`` from the scenarios."""
    return dict(recording.calls)


@pytest.fixture(scope="session")
def recording() -> CallRecorder:
    """The recorded scenarios (tests/deploy/recording.py), run once."""
    import boto3
    from moto import mock_aws

    from infra.template import create_jobs_table, create_topic

    recorder = CallRecorder()
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws(), recorder.installed(monkeypatch):
        record_backend(recorder, monkeypatch)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(dynamodb, "trainbot-bot-recording")
        topic = create_topic(boto3.client("sns", region_name="us-east-1"), "trainbot-bot-recording")
        with pytest.MonkeyPatch.context() as bot_patch:
            record_bot(recorder, bot_patch, "trainbot-bot-recording", topic)
    return recorder
