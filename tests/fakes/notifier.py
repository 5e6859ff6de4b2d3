"""A notifier that records what it was asked to send (backend.ports.Notifier)."""

from __future__ import annotations

from backend.domain.model import Job
from backend.domain.status import JobStatus


class RecordingNotifier:
    """Records (job id, seq, status of that change) for every notification."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.sent: list[tuple[str, int, JobStatus]] = []

    def notify(self, job: Job, seq: int) -> None:
        self.sent.append((job.job_id, seq, job.history[seq - 1].to_status))

    def statuses(self, job_id: str) -> list[JobStatus]:
        return [status for sent_id, _, status in self.sent if sent_id == job_id]
