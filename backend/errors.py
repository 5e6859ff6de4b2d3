"""Typed errors of Trainbot. Adapters raise these (``raise … from exc``); entry points map them
to a user message (the bot) or a log line and a metric (scheduled functions). Nobody branches
on message text."""

from __future__ import annotations


class TrainbotError(Exception):
    """Base class of every error Trainbot raises on purpose."""


class JobNotFound(TrainbotError):
    """No job with this id exists."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class AmbiguousName(TrainbotError):
    """A job name typed where an id goes names more than one of its owner's jobs."""

    def __init__(self, name: str, job_ids: list[str]) -> None:
        super().__init__(f"{name!r} names {len(job_ids)} jobs")
        self.name = name
        self.job_ids = job_ids


class IllegalTransition(TrainbotError):
    """The status machine does not allow this move."""

    def __init__(self, job_id: str, from_status: str, to_status: str) -> None:
        super().__init__(f"job {job_id}: {from_status} -> {to_status} is not a legal transition")
        self.job_id = job_id
        self.from_status = from_status
        self.to_status = to_status


class NotAuthorized(TrainbotError):
    """The caller may not do this (not allowed, or not the job's owner nor an admin)."""


class InvalidRequest(TrainbotError):
    """A request (command text, spec file, modal) is malformed; ``problems`` name each field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class ConfigError(TrainbotError):
    """The deployment's configuration (environment) is missing or invalid."""


class UnreadableItem(TrainbotError):
    """A stored item this version cannot decode (written by a newer version, or before a
    rollback): it costs only itself; readers that walk many items skip and count it."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"item {key!r} cannot be read by this version" + (f": {detail}" if detail else ""))
        self.key = key


class StoreUnavailable(TrainbotError):
    """The job store could not be reached or answered with a server error after retries:
    the outcome of the request is unknown, not failed."""


class BackendUnavailable(TrainbotError):
    """The training backend (SageMaker) was throttled or failed on its side after retries:
    what happened is unknown, so callers must neither fail the job nor assume success."""


class BackendRefused(TrainbotError):
    """The training backend refused a request for good (AccessDenied, a malformed request):
    asking again cannot help, though what happened to the job is still unknown."""


class NotifierUnavailable(TrainbotError):
    """A notification channel (Slack, SNS) could not take a message now; it stays pending."""


class NotifierUncertain(NotifierUnavailable):
    """A send failed in a way that says nothing of whether it landed (a timeout, a dropped
    connection, a 5xx after the request was sent): it stays pending, and a notifier that can
    look (the Slack thread's replies) looks before sending it again."""


class NotifierRejected(TrainbotError):
    """A notification channel refused a message for good (the bot is not in the channel, the
    channel was archived): retrying cannot help, so it is logged and counted as handled."""


class CreateRefused(TrainbotError):
    """The training backend refused to create an attempt; ``classification`` says why, in the
    retry policy's terms (the adapter translated SageMaker's error code)."""

    def __init__(self, classification) -> None:
        super().__init__(classification.reason)
        self.classification = classification


class AlreadyExists(TrainbotError):
    """An attempt with this name exists on the training backend already (a crashed earlier
    run created it): adopt it rather than fail."""
