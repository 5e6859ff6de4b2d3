"""The composition root wires a store it is given (the in-memory one here) into every service."""

from __future__ import annotations

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
