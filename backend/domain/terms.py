"""The domain's words that need no model: the limits, names and enums the pydantic models of
:mod:`backend.domain.model` are made of (it exports them too).

Code that runs on every launcher and monitor cold start imports them from here (issue 26): an
idle run, which validates no job, then imports no pydantic at all (its import and the models'
definitions were about 70 ms of a first run's CPU; tests/unit/test_import_boundaries.py keeps
it so). Pure Python: no pydantic, no I/O.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum

# SageMaker's training job name pattern; a JobId plus "-a<attempt>" must match it.
SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
JOB_ID_MAX = 58  # 58 + len("-a999") = 63, SageMaker's limit
MAX_ATTEMPTS = 999
# How long a launcher's claim on an attempt lasts: longer than the launcher's Lambda timeout
# (template.yaml; tests/contract keeps it so), so a create cannot land after its claim expired.
# Until then an attempt stopped before launch may still be created by the run that claimed it.
LAUNCH_LEASE = timedelta(minutes=5)
PLAN_USE_PREFIX = "plan:"  # Job.use_key of an attempt on a training plan (no instance type starts so)  # the attempt number must fit in the 5 characters JOB_ID_MAX leaves
JOB_ID_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,57}$")
# An optional deployment prefix on every JobId (TRAINBOT_JOB_ID_PREFIX), so IAM can scope
# SageMaker actions to ``training-job/<prefix>*``. Lowercase because SageMaker lowercases the
# names in its ARNs; it starts with a letter or digit as a SageMaker name must.
JOB_ID_PREFIX = re.compile(r"^([a-z0-9][a-z0-9-]{0,11})?$")

S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]{1,512}$")
IMAGE_URI = re.compile(r"^[a-zA-Z0-9.\-]+(:\d+)?/[a-z0-9._/\-]+([:@][\w.:\-]+)?$")
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,64}$")
MAX_RUNTIME_LIMIT = 28 * 24 * 3600  # SageMaker's ceiling for MaxRuntimeInSeconds
MAX_INSTANCE_COUNT = 100
MAX_VOLUME_GB = 16384
MAX_JOB_NAME = 40  # the longest job name a request may give (a sweep's "<name>-<n>" included)
MAX_PRIORITY = 9  # priorities are 0 (lowest) to MAX_PRIORITY
MAX_RETRY_BUDGET = 20
MAX_HYPERPARAMETERS = 100
MAX_HP_KEY = 256
MAX_HP_VALUE = 2500
MAX_TAGS = 50
# AlgorithmSpecification.MetricDefinitions (SageMaker API Reference, MetricDefinition): at most
# 40 definitions; Name 1-255 characters, Regex 1-500, each of pattern ``.+``.
MAX_METRIC_DEFINITIONS = 40
MAX_METRIC_NAME = 255
MAX_METRIC_REGEX = 500

# How the /train grammar (and so every error message) names each request field.
FIELD_LABELS: dict[str, str] = {
    "AlgorithmSpecification.TrainingImage": "image",
    "AlgorithmSpecification.MetricDefinitions": "metric",
    "ResourceConfig.InstanceType": "instance",
    "ResourceConfig.InstanceCount": "count",
    "ResourceConfig.VolumeSizeInGB": "volume",
    "InputDataConfig": "input",
    "OutputDataConfig.S3OutputPath": "output",
    "RoleArn": "role",
    "StoppingCondition.MaxRuntimeInSeconds": "max_runtime",
    "StoppingCondition.MaxWaitTimeInSeconds": "max_wait",
    "EnableManagedSpotTraining": "spot",
    "CheckpointConfig.S3Uri": "checkpoint",
    "HyperParameters": "hp",
    "Tags": "tags",
}


def label_of(loc: tuple[int | str, ...]) -> str:
    """The user-facing name of a JobArgs validation error location."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    for size in range(len(parts), 0, -1):
        label = FIELD_LABELS.get(".".join(parts[:size]))
        if label:
            if label == "hp" and len(parts) > size:
                return f"hp.{parts[size]}"
            return label
    return ".".join(parts) or "request"


def attempt_name(job_id: str, number: int) -> str:
    """The SageMaker training job name of attempt ``number`` (a fixed point: `<JobId>-a<n>`)."""
    if not 1 <= number <= MAX_ATTEMPTS:
        raise ValueError(f"attempt number {number} is outside 1..{MAX_ATTEMPTS}")
    return f"{job_id}-a{number}"


_ATTEMPT_SUFFIX = re.compile(r"^(?P<job>.+)-a(?P<n>\d{1,3})$")


def parse_attempt_name(name: str) -> tuple[str, int] | None:
    """``(job_id, attempt)`` from a training job name, or None if it is not one of ours."""
    match = _ATTEMPT_SUFFIX.match(name)
    if not match or not JOB_ID_PATTERN.match(match["job"]):
        return None
    return match["job"], int(match["n"])


class FailureClass(StrEnum):
    """The failure classes of docs/architecture.md: what the retry policy tells apart."""

    CAPACITY = "capacity"  # no capacity for the instance type right now: free retry
    QUOTA = "quota"  # the account's quota is in use: free retry
    THROTTLING = "throttling"  # throttling or a 5xx: retry, never fail the job for it
    UNKNOWN = "unknown"  # could not find out: leave the job, look again later
    ALGORITHM = "algorithm"  # the training code failed: retry within the job's budget
    USER = "user"  # bad request, role, image, zero quota: fail at once
    STOPPED = "stopped"  # a user asked to stop
    # SageMaker stopped it because its training plan's reserved capacity ended (not the job's
    # code, nor a user): run again on-demand with plan_fallback=ondemand, else it ends Stopped.
    PLAN_ENDED = "plan_ended"


class AttemptOutcome(StrEnum):
    PENDING = "pending"  # name recorded, CreateTrainingJob not yet known to have succeeded
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    NOT_STARTED = "not_started"  # create was refused: the name was never used


class NotifyMode(StrEnum):
    """The ``notify=`` option: who hears what in Slack (:mod:`backend.domain.notice`)."""

    ALL = "all"
    FAILURES = "failures"
    END = "end"


def slug_of(name: str, max_len: int) -> str:
    """A readable job-name stem safe inside a SageMaker name, at most ``max_len`` characters
    (:func:`backend.domain.model.slugify`; here so code that only names things needs no model)."""
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)[:max_len].strip("-")
    return slug or "job"


def base36(number: int, width: int) -> str:
    """``number`` as ``width`` base-36 digits (its lowest ones)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    digits = []
    for _ in range(width):
        number, digit = divmod(number, 36)
        digits.append(alphabet[digit])
    return "".join(reversed(digits))
