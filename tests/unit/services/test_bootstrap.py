"""The composition root wires a store it is given (the in-memory one here) into every service."""

from __future__ import annotations

from types import SimpleNamespace

from backend.bootstrap import build
from backend.config import Settings
from backend.domain.status import JobStatus
from tests.conftest import T0, job_args
from tests.fakes.memory_store import MemoryJobStore
from tests.fakes.notifier import RecordingNotifier
from tests.unit.services.conftest import OWNER


class _UnusedClient:
    """A boto3 client stand-in that must not be called: submitting never reaches SageMaker."""

    def __getattr__(self, name: str):
        raise AssertionError(f"SageMaker {name} was called")


def test_build_wires_the_given_store_and_notifiers_into_the_services():
    store = MemoryJobStore()
    recorder = RecordingNotifier()
    container = build(
        Settings(JOBS_TABLE_NAME="trainbot-jobs"),
        clock=lambda: T0,
        sagemaker=_UnusedClient(),
        store_override=store,
        notifiers=lambda given: [recorder] if given is store else [],
    )
    registered = container.jobs.submit(name="bert", job_args=job_args(), actor=OWNER, client_token="t-1")
    assert container.store is store and store.notify_targets == (recorder.name,)
    assert store.get(registered.job.job_id).status is JobStatus.NEW
    # "New" alone waits to be told with the next change that matters (backend.domain.notice).
    assert recorder.sent == []
    container.jobs.stop(registered.job.job_id, OWNER)
    assert recorder.sent == [(registered.job.job_id, 1, JobStatus.NEW), (registered.job.job_id, 2, JobStatus.STOPPED)]


def test_build_makes_no_aws_or_slack_client_until_one_is_used(monkeypatch):
    from backend.adapters import aws
    from backend.adapters.slack import client as slack_client

    made: list[str] = []
    monkeypatch.setattr(aws, "aws_client", lambda service, **options: made.append(service) or SimpleNamespace(meta=service))
    monkeypatch.setattr(slack_client, "web_client", lambda settings, **options: made.append("slack") or SimpleNamespace())
    settings = Settings(
        JOBS_TABLE_NAME="trainbot-jobs",
        NOTIFY_TOPIC_ARN="arn:aws:sns:us-east-1:123456789012:trainbot",
        SLACK_BOT_TOKEN="xoxb-test",
        TRAINBOT_LAUNCHER_FUNCTION="trainbot-launcher",
    )
    container = build(settings)
    container.launcher, container.monitor, container.kicker, container.submissions  # noqa: B018  # wires them all
    assert made == []

    assert container.backend._client.meta == "sagemaker"  # its first use makes it, once
    assert container.backend._client.meta == "sagemaker"
    assert made == ["sagemaker"]


def test_every_aws_client_comes_from_one_session(monkeypatch):
    import botocore.session

    from backend.adapters import aws

    sessions: list[object] = []
    monkeypatch.setattr(aws, "_session", None)
    monkeypatch.setattr(botocore.session.Session, "__init__", lambda self, *a, **k: sessions.append(self))
    monkeypatch.setattr(botocore.session.Session, "create_client", lambda self, service, **options: service)
    assert [aws.aws_client(s, region="us-east-1") for s in ("dynamodb", "sagemaker", "sns")] == ["dynamodb", "sagemaker", "sns"]
    assert len(sessions) == 1
