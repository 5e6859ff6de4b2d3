"""The job model: what a training job is to Trainbot.

``JobArgs`` is the CreateTrainingJob request itself (minus ``TrainingJobName``, which each
attempt gets anew: ``<JobId>-a<attempt>``), so its fields keep SageMaker's names and
``job_args.to_request(name)`` is exactly what the SageMaker adapter sends. Everything else on
``Job`` is Trainbot's bookkeeping: owner, Slack thread, priority, attempts, status history.

Validation messages are written for scientists: they name the field the way the `/train`
grammar names it (``instance``, ``hp.lr``) and say what a good value looks like.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_pascal

from backend.domain.approval import ApprovalState
from backend.domain.base import DomainModel, UtcDatetime
from backend.domain.bounds import ATTEMPTS_KEPT
from backend.domain.history import HistoryEntry, compact_history, move_entry, note_entry
from backend.domain.instance_types import TRAINING_INSTANCE_TYPES, instance_list_problems
from backend.domain.logtail import TAIL_BYTES, TAIL_LINES, TailState, render_hosts
from backend.domain.status import ACTIVE, QUEUED, TERMINAL, JobStatus
from backend.domain.terms import (
    CHANNEL_NAME,
    IMAGE_URI,
    JOB_ID_MAX,
    JOB_ID_PATTERN,
    JOB_ID_PREFIX,
    MAX_HP_KEY,
    MAX_HP_VALUE,
    MAX_HYPERPARAMETERS,
    MAX_INSTANCE_COUNT,
    MAX_METRIC_DEFINITIONS,
    MAX_METRIC_NAME,
    MAX_METRIC_REGEX,
    MAX_PRIORITY,
    MAX_RETRY_BUDGET,
    MAX_RUNTIME_LIMIT,
    MAX_TAGS,
    MAX_VOLUME_GB,
    PLAN_USE_PREFIX,
    ROLE_ARN,
    S3_URI,
    AttemptOutcome,
    FailureClass,
    NotifyMode,
    attempt_name,
    slug_of,
)

# Imported from here too, as before they moved to backend.domain.terms.
from backend.domain.terms import MAX_ATTEMPTS as MAX_ATTEMPTS
from backend.domain.terms import MAX_JOB_NAME as MAX_JOB_NAME
from backend.domain.terms import SAGEMAKER_NAME as SAGEMAKER_NAME
from backend.domain.terms import base36 as base36
from backend.domain.terms import label_of as label_of
from backend.domain.terms import parse_attempt_name as parse_attempt_name

_SUFFIX_LEN = 6
_NAME_MAX = JOB_ID_MAX - _SUFFIX_LEN - 1


def _example(field: str) -> str:
    return {
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
        "role": "arn:aws:iam::123456789012:role/SageMakerRole",
        "output": "s3://my-bucket/runs",
        "input": "s3://my-bucket/train",
        "checkpoint": "s3://my-bucket/checkpoints",
    }[field]


class _Request(DomainModel):
    """Base of the CreateTrainingJob request parts: SageMaker's own field names, strict."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricDefinition(_Request):
    """A metric SageMaker reads from the training log: the first group of ``Regex``'s match."""

    Name: str
    Regex: str

    @field_validator("Name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not 1 <= len(value) <= MAX_METRIC_NAME or not re.fullmatch(r".+", value):
            raise ValueError(f"metric names are 1 to {MAX_METRIC_NAME} characters on one line ({value[:40]!r})")
        return value

    @field_validator("Regex")
    @classmethod
    def _regex(cls, value: str) -> str:
        if not 1 <= len(value) <= MAX_METRIC_REGEX or not re.fullmatch(r".+", value):
            raise ValueError(f"a metric regex is 1 to {MAX_METRIC_REGEX} characters on one line, not {len(value)}")
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value[:60]!r} is not a regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError(f"{value[:60]!r} needs a group around the value, e.g. loss=([0-9.]+)")
        return value


class Algorithm(_Request):
    TrainingImage: str
    TrainingInputMode: str = "File"
    MetricDefinitions: list[MetricDefinition] | None = None

    @field_validator("TrainingImage")
    @classmethod
    def _image(cls, value: str) -> str:
        if len(value) > 255 or not IMAGE_URI.match(value):
            raise ValueError(f"{value!r} is not a container image URI; expected e.g. {_example('image')}")
        return value

    @field_validator("TrainingInputMode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in {"File", "Pipe", "FastFile"}:
            raise ValueError("input mode must be File, Pipe or FastFile")
        return value

    @field_validator("MetricDefinitions")
    @classmethod
    def _metrics(cls, value: list[MetricDefinition] | None) -> list[MetricDefinition] | None:
        if not value:
            return None  # absent means none: SageMaker's request has no empty list
        if len(value) > MAX_METRIC_DEFINITIONS:
            raise ValueError(f"SageMaker takes at most {MAX_METRIC_DEFINITIONS} metric definitions, not {len(value)}")
        names = [m.Name for m in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"metric {twice[0]!r} is defined twice")
        return value


class Resources(_Request):
    InstanceType: str
    InstanceCount: int = 1
    VolumeSizeInGB: int = 50

    @field_validator("InstanceType")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if value not in TRAINING_INSTANCE_TYPES:
            hint = "ml." + value if not value.startswith("ml.") and "ml." + value in TRAINING_INSTANCE_TYPES else None
            did_you_mean = f" (did you mean {hint}?)" if hint else ""
            raise ValueError(
                f"{value!r} is not a SageMaker training instance type{did_you_mean}; "
                "expected e.g. ml.g5.xlarge, ml.p4d.24xlarge, ml.m5.large"
            )
        return value

    @field_validator("InstanceCount")
    @classmethod
    def _count(cls, value: int) -> int:
        if not 1 <= value <= MAX_INSTANCE_COUNT:
            raise ValueError(f"instance count must be between 1 and {MAX_INSTANCE_COUNT}, not {value}")
        return value

    @field_validator("VolumeSizeInGB")
    @classmethod
    def _volume(cls, value: int) -> int:
        if not 1 <= value <= MAX_VOLUME_GB:
            raise ValueError(f"volume size must be between 1 and {MAX_VOLUME_GB} GB, not {value}")
        return value


class S3Source(_Request):
    S3Uri: str
    S3DataType: str = "S3Prefix"
    S3DataDistributionType: str = "FullyReplicated"

    @field_validator("S3Uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not S3_URI.match(value):
            raise ValueError(f"{value!r} is not an S3 URI; expected e.g. {_example('input')}")
        return value


class ChannelSource(_Request):
    S3DataSource: S3Source


class Channel(_Request):
    ChannelName: str = "train"
    DataSource: ChannelSource

    @field_validator("ChannelName")
    @classmethod
    def _name(cls, value: str) -> str:
        if not CHANNEL_NAME.match(value):
            raise ValueError(f"channel name {value!r} may use only letters, digits, '.', '-', '_' (64 at most)")
        return value


class Output(_Request):
    S3OutputPath: str

    @field_validator("S3OutputPath")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not S3_URI.match(value):
            raise ValueError(f"{value!r} is not an S3 URI; expected e.g. {_example('output')}")
        return value


class Stopping(_Request):
    MaxRuntimeInSeconds: int = 24 * 3600
    MaxWaitTimeInSeconds: int | None = None

    @field_validator("MaxRuntimeInSeconds", "MaxWaitTimeInSeconds")
    @classmethod
    def _bounds(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_RUNTIME_LIMIT:
            raise ValueError(f"must be between 1 second and 28 days ({MAX_RUNTIME_LIMIT} s), not {value}")
        return value


class Checkpoint(_Request):
    S3Uri: str

    @field_validator("S3Uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not S3_URI.match(value):
            raise ValueError(f"{value!r} is not an S3 URI; expected e.g. {_example('checkpoint')}")
        return value


class Tag(_Request):
    Key: Annotated[str, Field(min_length=1, max_length=128)]
    Value: Annotated[str, Field(max_length=256)] = ""


class JobArgs(_Request):
    """A validated CreateTrainingJob request, without the per-attempt ``TrainingJobName``."""

    AlgorithmSpecification: Algorithm
    RoleArn: str
    InputDataConfig: list[Channel] = Field(default_factory=list)
    OutputDataConfig: Output
    ResourceConfig: Resources
    StoppingCondition: Stopping = Field(default_factory=Stopping)
    HyperParameters: dict[str, str] = Field(default_factory=dict)
    EnableManagedSpotTraining: bool = False
    CheckpointConfig: Checkpoint | None = None
    Tags: list[Tag] = Field(default_factory=list)

    @field_validator("RoleArn")
    @classmethod
    def _role(cls, value: str) -> str:
        if not ROLE_ARN.match(value):
            raise ValueError(f"{value!r} is not an IAM role ARN; expected e.g. {_example('role')}")
        return value

    @field_validator("InputDataConfig")
    @classmethod
    def _channels(cls, value: list[Channel]) -> list[Channel]:
        if len(value) > 20:
            raise ValueError(f"at most 20 input channels, not {len(value)}")
        names = [c.ChannelName for c in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"input channel {duplicates[0]!r} is given twice")
        return value

    @field_validator("HyperParameters")
    @classmethod
    def _hyperparameters(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HYPERPARAMETERS:
            raise ValueError(f"SageMaker takes at most {MAX_HYPERPARAMETERS} hyperparameters, not {len(value)}")
        for key, item in value.items():
            if not key or len(key) > MAX_HP_KEY:
                raise ValueError(f"hyperparameter names must be 1 to {MAX_HP_KEY} characters ({key[:40]!r}…)")
            if len(item) > MAX_HP_VALUE:
                raise ValueError(f"hp.{key[:40]}: value is {len(item)} characters; SageMaker allows {MAX_HP_VALUE}")
        return value

    @field_validator("Tags")
    @classmethod
    def _tags(cls, value: list[Tag]) -> list[Tag]:
        if len(value) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags, not {len(value)}")
        return value

    @model_validator(mode="after")
    def _spot(self) -> JobArgs:
        stop = self.StoppingCondition
        if self.EnableManagedSpotTraining:
            if stop.MaxWaitTimeInSeconds is None:
                raise ValueError("spot training needs max_wait (how long to wait for spot capacity, ≥ max_runtime)")
            if stop.MaxWaitTimeInSeconds < stop.MaxRuntimeInSeconds:
                raise ValueError(
                    f"max_wait ({stop.MaxWaitTimeInSeconds} s) must be at least max_runtime "
                    f"({stop.MaxRuntimeInSeconds} s) for spot training"
                )
        elif stop.MaxWaitTimeInSeconds is not None:
            raise ValueError("max_wait applies only to spot training (spot=true)")
        return self

    @property
    def instance_type(self) -> str:
        return self.ResourceConfig.InstanceType

    @property
    def instance_count(self) -> int:
        return self.ResourceConfig.InstanceCount

    def to_request(
        self, training_job_name: str, instance_type: str | None = None, *, training_plan_arn: str | None = None
    ) -> dict[str, Any]:
        """The CreateTrainingJob request for one attempt (on ``instance_type``: a fallback
        type of the job's list; by default the first choice; on a training plan's reserved
        capacity when ``training_plan_arn`` is given)."""
        request = self.model_dump(exclude_none=True)
        if instance_type is not None:
            request["ResourceConfig"]["InstanceType"] = instance_type
        if training_plan_arn:
            request["ResourceConfig"]["TrainingPlanArn"] = training_plan_arn
        # SageMaker refuses empty lists where it takes "1 or more"; absent means none.
        for optional_list in ("InputDataConfig", "Tags"):
            if not request.get(optional_list):
                request.pop(optional_list, None)
        return {"TrainingJobName": training_job_name, **request}


# --- the job -------------------------------------------------------------------------------


class Approval(DomainModel):
    """A job's approval hold and, once decided, who decided what and when."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    state: ApprovalState = ApprovalState.PENDING
    reasons: list[str] = Field(default_factory=list)  # why it needs approval, for the admins
    decided_by: str | None = None
    decided_at: UtcDatetime | None = None
    note: str = ""
    # Held on its own, not as part of its sweep's hold: a sweep job whose automatic retry went
    # past the budget. It carries its own approval card, and a press on it decides it alone.
    alone: bool = False


class HostTail(DomainModel):
    """The last lines of one host's stream (``<training-job>/algo-<n>-<epoch>``)."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    stream: str
    lines: list[str] = Field(default_factory=list)
    last_at: datetime | None = None


class LogTail(DomainModel):
    """The end of a training job's log, as stored on its failed attempt."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    state: TailState
    hosts: list[HostTail] = Field(default_factory=list)
    more_hosts: int = 0  # streams not read (beyond TAIL_HOSTS)
    note: str = ""  # why it could not be read

    def text(self, *, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str:
        """The tail as plain text (``[algo-1]`` headers when there are several hosts), cut to
        the newest lines that fit ``max_lines`` per host and ``max_bytes`` in all."""
        return "\n".join(render_hosts(self.hosts, max_lines=max_lines, max_bytes=max_bytes))



class Owner(DomainModel):
    """Who submitted a job: a Slack user within a Slack team (workspace)."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    team_id: str
    user_id: str

    @property
    def key(self) -> str:
        """One string naming the owner, used as the owner index's partition key."""
        return f"{self.team_id}:{self.user_id}"


class SlackThread(DomainModel):
    """Where a job's Slack thread lives: the channel and the ``ts`` of its root message."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    channel_id: str
    thread_ts: str | None = None


class Attempt(DomainModel):
    """One SageMaker training job run for a Trainbot job."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    number: int
    name: str  # the SageMaker training job name, <JobId>-a<number>
    claimed_at: UtcDatetime
    launched_at: UtcDatetime | None = None
    started_at: UtcDatetime | None = None
    ended_at: UtcDatetime | None = None
    outcome: AttemptOutcome = AttemptOutcome.PENDING
    failure_class: FailureClass | None = None
    reason: str = ""
    billable_seconds: int | None = None
    # The end of its CloudWatch log, read when it failed in its container (only the newest failed
    # attempt keeps one: see backend.domain.logtail).
    log_tail: LogTail | None = None
    # The instance type this attempt runs on (a job with fallback types may change it between
    # attempts); None on attempts recorded before fallback existed: the job's first choice.
    instance_type: str | None = None
    # CreateTrainingJob calls in a row for this (pending) attempt whose outcome SageMaker left
    # unknown (a service error, an error we do not know); None: none. Bounded by the launcher.
    create_errors: int | None = None
    # True when SageMaker reported the attempt Stopping without Trainbot asking (its own stopping
    # condition, or a stop from the console): its end, not a user's stop, then decides.
    stopping_outside: bool | None = None
    # Sweeps in a row whose Describe of this attempt SageMaker refused for good (AccessDenied),
    # and when the first of them was; None: none. The monitor fails the job once it persists.
    describe_refusals: int | None = None
    describe_refused_at: UtcDatetime | None = None
    # The training plan this attempt was created on (its create named the plan's ARN); None:
    # on-demand. ``off_plan``: SageMaker's Describe said it runs on no plan, or another (the
    # thread was told once).
    plan: str | None = None
    off_plan: bool | None = None
    # The plan's end this attempt was warned of (it may still run when SageMaker stops the
    # plan's jobs), and when: one warning per attempt, told through the outbox by the history
    # note written with it (backend.domain.notice.tells_plan_end). None: not warned.
    plan_ends_at: UtcDatetime | None = None
    plan_end_warned_at: UtcDatetime | None = None
    # While it runs: its defined metrics' latest values as SageMaker's Describe reported them
    # (name -> value) and when the monitor stored them (only when they changed, at most once per
    # TRAINBOT_LIVE_METRICS_SECONDS); the job's card shows them. Only the newest attempt keeps
    # them (a job's item stays small however often it is retried).
    metrics: dict[str, float] | None = None
    metrics_at: UtcDatetime | None = None


class Lease(DomainModel):
    """A launcher's claim on a queued job: only the holder may create the pending attempt
    until ``expires_at``; after that the next launcher reconciles from the recorded name."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    token: str
    expires_at: UtcDatetime


class Job(DomainModel):
    """A Trainbot job, as stored in the jobs table (attribute names are the aliases)."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    job_id: str
    status: JobStatus = Field(default=JobStatus.NEW, alias="JobStatus")
    job_args: JobArgs
    name: str = Field(alias="JobName")
    owner: Owner
    slack: SlackThread | None = None
    priority: int = Field(default=5, ge=0, le=MAX_PRIORITY)
    retry_budget: int = Field(default=2, ge=0, le=MAX_RETRY_BUDGET)
    algorithm_failures: int = 0
    attempts: list[Attempt] = Field(default_factory=list)
    next_attempt_at: UtcDatetime | None = None
    # When the job first hit a capacity/quota error in its current streak: capacity retries are
    # free, but not forever (TRAINBOT_CAPACITY_MAX_WAIT_SECONDS).
    capacity_wait_since: UtcDatetime | None = None
    lease: Lease | None = None
    # Set by the launcher when the job was due but its instance type had no room (held after
    # ResourceLimitExceeded, or at TRAINBOT_INSTANCE_LIMITS): it then waits in the Queue index's
    # ``parked`` partition, by instance type, so jobs of other types are never stuck behind it.
    # Any status change or claim unparks it.
    parked_at: UtcDatetime | None = None
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: UtcDatetime
    updated_at: UtcDatetime
    version: int = 1
    client_token: str | None = None
    sweep_id: str | None = None
    preset: str | None = None
    # Who hears what in Slack (backend.domain.notice); None: the team default.
    notify: NotifyMode | None = None
    # Start tag for fair queueing across owners (see backend.domain.fairness).
    queue_tag: float = 0.0
    # notifier name -> the last history seq it delivered (the outbox; see the notifier).
    delivered: dict[str, int] = Field(default_factory=dict)
    # notifier name -> the last change that may have reached it without ``delivered`` saying so
    # (its send's answer was lost; a delivery round was killed before recording its sends): a
    # notifier that can look (the Slack thread) looks before sending any change up to that one
    # again (backend.services.notify). None: no doubt (and no such attribute on the item).
    doubts: dict[str, int] | None = None
    # An approval hold (backend.domain.approval): pending keeps a New job out of the launch queue.
    approval: Approval | None = None
    # Stall warning (stall_alert=45m): seconds without a new log line before the thread is told;
    # None: the team default (TRAINBOT_STALL_ALERT_SECONDS), 0: off. ``stall_warned_at`` is the
    # time of the last log line a warning was given for: one warning per silence.
    stall_alert_seconds: int | None = None
    stall_warned_at: UtcDatetime | None = None
    # ``instance=a,b,c``: the types after the first choice (``job_args``' own), in order of
    # preference, that an attempt may use when the ones before it are refused for capacity or
    # quota (backend.domain.instance_types.choose_instance_type).
    # (None when it has none, so an ordinary job's item carries no such attribute.)
    fallback_types: list[str] | None = None
    # Why the launcher last left this queued job waiting (its types held or at their limit),
    # written only when it changes; the card shows it. Cleared by any status change.
    waiting: str | None = None
    # The budget reservation this job holds (backend.services.budget): ``<usage key>|<token>``,
    # on the ``usage#<team>#<week>`` record of the week it was accepted in; None: it holds none.
    reservation: str | None = None
    # ``plan=``, or the team's default plan (TRAINBOT_TEAM_PLANS): the training plan whose
    # reserved capacity the job runs on (backend.domain.plans); None: on-demand.
    # ``plan_fallback``: True (``plan_fallback=ondemand``) runs it on-demand when the plan is
    # full or ended instead of waiting or failing.
    plan: str | None = None
    plan_fallback: bool | None = None
    # When its attempt completed: its defined metrics' final values (metric name -> value, from
    # the training backend's last read of the log) and where the trained model was written (an
    # S3 URI). None until then, so a job without them carries no such attributes.
    final_metrics: dict[str, float] | None = None
    model_artifact: str | None = None

    @field_validator("job_id")
    @classmethod
    def _job_id(cls, value: str) -> str:
        if not JOB_ID_PATTERN.match(value):
            raise ValueError(f"job id {value!r} must be 1-{JOB_ID_MAX} letters, digits and dashes")
        return value

    @model_validator(mode="after")
    def _fallbacks(self) -> Job:
        problems = instance_list_problems(self.instance_choices) if self.fallback_types else []
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_queued(self) -> bool:
        return self.status in QUEUED

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_held(self) -> bool:
        """Waiting for an admin's approval: never launched until approved. ``Retrying`` too: a
        job stopped while held and retried by its owner waits for the admins again."""
        return self.status in (JobStatus.NEW, JobStatus.RETRYING) and self.approval is not None and self.approval.state is ApprovalState.PENDING

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def active_since(self) -> datetime:
        """When it last became active (its move from a queued status into Launched): its place
        in the Active index, fixed while it stays active, so a write to a running job (InProgress,
        a stall mark) rewrites no index entry and the monitor's sweeps walk a stable order.
        ``updated_at`` when its history no longer holds that move."""
        for entry in reversed(self.history):
            if entry.to_status in ACTIVE and entry.from_status not in ACTIVE:
                return entry.at
        return self.updated_at

    @property
    def last_seq(self) -> int:
        return self.history[-1].seq if self.history else 0

    @property
    def attempt_count(self) -> int:
        """How many attempts the job has had (older ones may have been compacted away)."""
        return self.attempts[-1].number if self.attempts else 0

    def entry(self, seq: int) -> HistoryEntry | None:
        """History entry ``seq``; None if it was compacted away (see HISTORY_KEPT)."""
        for entry in reversed(self.history):
            if entry.seq == seq:
                return entry
            if entry.seq < seq:
                break
        return None

    @property
    def instance_choices(self) -> list[str]:
        """Its instance types in order of preference: the first choice, then its fallbacks."""
        return [self.job_args.instance_type, *(self.fallback_types or ())]

    @property
    def park_key(self) -> str:
        """What the launcher parks it under (the Queue index's ``parked`` partition): its
        types, comma-joined, so it is read again as soon as *any* of them has room."""
        return ",".join(self.instance_choices)

    def instance_type_of(self, attempt: Attempt | None) -> str:
        """The type ``attempt`` runs on (the first choice when it predates fallback or when
        there is no attempt)."""
        if attempt is not None and attempt.instance_type:
            return attempt.instance_type
        return self.job_args.instance_type

    @property
    def running_instance_type(self) -> str:
        """The type its current attempt uses (what it counts against while active)."""
        return self.instance_type_of(self.current_attempt)

    @property
    def use_key(self) -> str:
        """What its running attempt holds, for counting while it is active: its instance type
        (on-demand limits), or ``plan:<name>`` when it runs on a training plan's reserved
        capacity (the plan's own count, never the on-demand limits)."""
        attempt = self.current_attempt
        if attempt is not None and attempt.plan:
            return f"{PLAN_USE_PREFIX}{attempt.plan}"
        return self.running_instance_type

    def next_attempt_name(self) -> str:
        return attempt_name(self.job_id, self.attempt_count + 1)

    def with_attempt(self, attempt: Attempt) -> list[Attempt]:
        """The attempts list with ``attempt`` appended, keeping the newest ATTEMPTS_KEPT."""
        return [*self.attempts, attempt][-ATTEMPTS_KEPT:]

    def replace_attempt(self, attempt: Attempt) -> list[Attempt]:
        """The attempts list with ``attempt`` (same number) swapped in."""
        return [attempt if a.number == attempt.number else a for a in self.attempts]


def slugify(name: str, max_len: int = _NAME_MAX) -> str:
    """A readable job-name stem safe inside a SageMaker name."""
    return slug_of(name, max_len)


def new_job_id(name: str, token: str | None = None, prefix: str = "") -> str:
    """``<prefix><slug>-<6 chars>``. With a client token the suffix is derived from it, so a
    duplicated delivery of one request yields the same id (and the store's conditional put
    refuses it). The slug is shortened by the prefix's length: the id stays <= JOB_ID_MAX."""
    if not JOB_ID_PREFIX.match(prefix):
        raise ValueError(f"job id prefix {prefix!r} must be up to 12 lowercase letters, digits or dashes, not starting with a dash")
    if token is None:
        suffix = secrets.token_hex(8)
    else:
        suffix = hashlib.sha256(token.encode()).hexdigest()
    return f"{prefix}{slugify(name, _NAME_MAX - len(prefix))}-{base36(int(suffix, 16), _SUFFIX_LEN)}"


def spot_checkpoint(job_args: JobArgs, job_id: str) -> JobArgs:
    """A spot job without a checkpoint location gets one per job (not per attempt) under its
    output path, beside the attempts' ``<JobId>-a<n>/`` output folders, so every attempt after
    an interruption or a capacity retry resumes from the same checkpoints."""
    if not job_args.EnableManagedSpotTraining or job_args.CheckpointConfig is not None:
        return job_args
    uri = f"{job_args.OutputDataConfig.S3OutputPath.rstrip('/')}/{job_id}/checkpoints"
    return job_args.model_copy(update={"CheckpointConfig": Checkpoint(S3Uri=uri)})


def new_job(
    *,
    name: str,
    job_args: JobArgs,
    owner: Owner,
    now: datetime,
    slack: SlackThread | None = None,
    priority: int = 5,
    retry_budget: int = 2,
    client_token: str | None = None,
    sweep_id: str | None = None,
    preset: str | None = None,
    job_id: str | None = None,
    prefix: str = "",
    notify: NotifyMode | None = None,
    approval: Approval | None = None,
    stall_alert_seconds: int | None = None,
    fallback_types: list[str] | tuple[str, ...] = (),
    plan: str | None = None,
    plan_fallback: bool = False,
) -> Job:
    """A job in status New, with its first history entry (its id carries ``prefix``); with a
    pending ``approval`` it is held until an admin approves it."""
    job_id = job_id or new_job_id(name, client_token, prefix)
    return Job(
        job_id=job_id,
        status=JobStatus.NEW,
        job_args=spot_checkpoint(job_args, job_id),
        stall_alert_seconds=stall_alert_seconds,
        name=name,
        owner=owner,
        slack=slack,
        priority=priority,
        retry_budget=retry_budget,
        history=[HistoryEntry(seq=1, at=now, from_status=None, to_status=JobStatus.NEW, reason="submitted")],
        created_at=now,
        updated_at=now,
        client_token=client_token,
        sweep_id=sweep_id,
        preset=preset,
        notify=notify,
        approval=approval,
        fallback_types=list(fallback_types) or None,
        plan=plan,
        plan_fallback=True if plan and plan_fallback else None,
    )


def transition(job: Job, to_status: JobStatus, *, at: datetime, reason: str = "", **changes: Any) -> Job:
    """Return ``job`` moved to ``to_status`` with ``changes`` applied, a history entry appended
    and the version bumped; raise :class:`IllegalTransition` if the move is not allowed.

    The store writes the result conditionally on ``job``'s status and version (the ones read),
    which is what makes a move happen at most once.
    """
    entry = move_entry(job.job_id, job.last_seq + 1, at, job.status, to_status, reason)
    return job.model_copy(
        update={
            "parked_at": None,
            "waiting": None,
            **changes,
            "status": to_status,
            "history": compact_history([*job.history, entry]),
            "updated_at": at,
            "version": job.version + 1,
        }
    )


def note(job: Job, *, at: datetime, reason: str) -> list[HistoryEntry]:
    """``job``'s history with a note appended (something happened; its status did not move):
    the ``history`` change of a plain (non-transition) write."""
    return compact_history([*job.history, note_entry(job.last_seq + 1, at, job.status, reason)])
