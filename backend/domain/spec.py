"""Job specs: ``key=value`` fields in, validated :class:`JobSpec` (and its ``JobArgs``) out.

The fields are the `/train submit` grammar's (``name=… image=… hp.lr=3e-5 input.val=s3://…
tag.team=nlp``); every entry point produces them its own way (the slash command's text, the
submit modal, a CLI spec file and flags) and this module is the one place that reads them:
durations, integer ranges, ``hp.``/``input.``/``tag.`` keys, and a sweep's expansion into one
spec per combination. Every mistake is a :class:`BadCommand` whose problems name the field the
way the grammar names it and whose ``usage`` shows the right form.

Pure: no boto3, no Slack. Limits the model already states are the model's constants.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from backend.domain.instance_types import instance_list_problems
from backend.domain.notice import NotifyMode
from backend.domain.plans import FALLBACK_ONDEMAND, NO_PLAN, plan_name_problem
from backend.domain.terms import MAX_INSTANCE_COUNT, MAX_JOB_NAME, MAX_PRIORITY, MAX_RETRY_BUDGET, MAX_VOLUME_GB, label_of
from backend.errors import InvalidRequest

if TYPE_CHECKING:
    from pydantic import ValidationError

    from backend.domain.model import JobArgs

PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HP_KEY = re.compile(r"^[A-Za-z0-9_.:/\-]{1,256}$")
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")
# A metric's name as SageMaker's MetricDefinition takes it (1-255 characters of ``.+``); in the
# grammar it is the key's tail, so it cannot hold an ``=``.
_METRIC_KEY = re.compile(r"^[^=\r\n]{1,255}$")
_OBJECTIVE = re.compile(r"^(?P<goal>min|max):(?P<metric>.+)$", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+)([dhms]?)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}

# Keys a submit/sweep/preset takes (besides hp.<name>, input.<channel>, tag.<key>).
JOB_KEYS = (
    "name",
    "preset",
    "image",
    "instance",
    "count",
    "volume",
    "input",
    "output",
    "role",
    "max_runtime",
    "max_wait",
    "spot",
    "checkpoint",
    "priority",
    "retries",
    "notify",
    "stall_alert",
    "plan",
    "plan_fallback",
    "objective",
)
PREFIX_KEYS = ("hp.", "input.", "tag.", "metric.")
REQUIRED = ("name", "image", "instance", "output", "role")
EXAMPLES = {
    "name": "bert-lr3",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.g5.xlarge",
    "count": "2",
    "volume": "100",
    "input": "s3://data-bucket/train",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
    "max_runtime": "1h",
    "max_wait": "2h",
    "spot": "true",
    "checkpoint": "s3://out-bucket/checkpoints",
    "priority": "5",
    "retries": "2",
    "notify": "failures",
    "preset": "nlp",
    "stall_alert": "45m",
    "plan": "p5-dec",
    "plan_fallback": "ondemand",
}

# The right forms, in the `/train` grammar's words (the CLI shows them too, "as in /train").
SUBMIT_EXAMPLE = (
    "/train submit name=bert-lr3 image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge input=s3://data-bucket/train output=s3://out-bucket/runs "
    "role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime=1h hp.lr=3e-5 hp.epochs=3"
)
SUBMIT_USAGE = SUBMIT_EXAMPLE + "\n/train submit preset=nlp name=bert-lr3 hp.lr=3e-5"
SWEEP_USAGE = (
    "/train sweep preset=nlp name=bert-grid hp.lr=1e-5,3e-5,1e-4 hp.batch=16,32\n"
    "/train sweep preset=nlp name=bert-grid hp.lr=1e-5,3e-5 metric.accuracy='accuracy=([0-9.]+)' objective=max:accuracy"
)
PRESET_USAGE = (
    "/train preset save nlp image=… role=… output=s3://out-bucket/runs instance=ml.g5.xlarge\n"
    "/train preset list\n/train preset show nlp\n/train preset delete nlp"
)


class BadCommand(InvalidRequest):
    """Fields (or command text) that cannot be accepted; ``usage`` is the right form to show."""

    def __init__(self, problems: list[str], usage: str = "") -> None:
        super().__init__(problems)
        self.usage = usage


@dataclass(frozen=True)
class Objective:
    """``objective=min:<metric>`` / ``max:<metric>``: what ranks a sweep's jobs."""

    metric: str
    maximize: bool

    @property
    def text(self) -> str:
        return f"{'max' if self.maximize else 'min'}:{self.metric}"


def parse_objective(value: str) -> Objective:
    """An objective's text as an :class:`Objective`; ValueError otherwise."""
    match = _OBJECTIVE.match(value.strip())
    if match is None:
        raise ValueError(f"{shorten(value)!r} is not an objective; write min:<metric> or max:<metric>, e.g. max:accuracy")
    return Objective(match["metric"], match["goal"].lower() == "max")


@dataclass(frozen=True)
class JobSpec:
    """One job, ready to register: a validated request plus Trainbot's own knobs."""

    name: str
    job_args: JobArgs
    priority: int = 5
    retry_budget: int = 2
    preset: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)  # a sweep's combination
    notify: NotifyMode | None = None  # who hears what in Slack (backend.domain.notice)
    stall_alert_seconds: int | None = None  # warn after this long without a log line (0: off)
    # ``instance=a,b``: the types after the first choice (backend.domain.instance_types).
    fallback_types: tuple[str, ...] = ()
    # ``plan=p5-dec``: run on that training plan's reserved capacity (backend.domain.plans);
    # None: the team's default plan, if any; ``plan=none``: on-demand even if the team has one.
    plan: str | None = None
    plan_fallback: bool = False  # ``plan_fallback=ondemand``: on-demand when the plan is full or ended


# --- fields ------------------------------------------------------------------------------------


def parse_fields(words: list[str], usage: str) -> dict[str, str]:
    """``key=value`` words as a dict; unknown, duplicated or malformed keys are problems."""
    fields: dict[str, str] = {}
    problems: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        key = key.strip()
        if not eq:
            problems.append(f"{shorten(word)!r} is not key=value")
            continue
        if not is_known_key(key):
            problems.append(
                f"{shorten(key)!r} is not a key; keys are {', '.join(JOB_KEYS)}, hp.<name>, input.<channel>, metric.<name>"
            )
            continue
        if key in fields:
            problems.append(f"{key} is given twice")
            continue
        fields[key] = value
    if problems:
        raise BadCommand(problems, usage)
    return fields


def is_known_key(key: str) -> bool:
    if key in JOB_KEYS:
        return True
    for prefix in PREFIX_KEYS:
        if key.startswith(prefix) and len(key) > len(prefix):
            rest = key[len(prefix) :]
            pattern = _TAG_KEY if prefix == "tag." else _METRIC_KEY if prefix == "metric." else _HP_KEY
            return bool(pattern.match(rest))
    return False


# --- values ------------------------------------------------------------------------------------


def duration(value: str) -> int:
    """Seconds in ``1h``, ``90m``, ``3600``, ``1h30m``, ``2d``; ValueError otherwise."""
    text = value.strip().lower()
    position, total = 0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += int(match[1]) * _UNITS[match[2]]
        position = match.end()
    if not text or position != len(text) or len(text) > 20:
        raise ValueError(f"{shorten(value)!r} is not a duration; write e.g. 1h, 90m, 1h30m or 3600 (seconds)")
    return total


def whole_number(value: str, low: int, high: int, what: str) -> int:
    """``value`` as an integer in ``low..high``; ValueError saying ``what`` otherwise."""
    if not re.fullmatch(r"\d{1,6}", value.strip()):
        raise ValueError(f"{shorten(value)!r} is not a whole number; {what}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range; {what}")
    return number


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"{shorten(value)!r} is not true or false")


def shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- fields -> validated job specs ---------------------------------------------------------------


def job_spec(fields: dict[str, str], usage: str = SUBMIT_USAGE) -> JobSpec:
    """Validate ``fields`` (preset already merged in) into one :class:`JobSpec`."""
    problems: list[str] = []
    if fields.get("objective"):
        problems.append("objective: an objective ranks a sweep's jobs; use it with /train sweep")
    request, knobs = _request(fields, problems)
    from pydantic import ValidationError  # a spec to validate: pydantic's first use, maybe

    from backend.domain.model import JobArgs

    try:
        job_args = JobArgs.model_validate(request)
    except ValidationError as exc:
        # Missing fields are named above in the grammar's words; report every other mistake too.
        problems.extend(_pydantic_problems(exc))
    if problems:
        raise BadCommand(problems, usage)
    return JobSpec(job_args=job_args, preset=fields.get("preset") or None, **knobs)


def sweep_size(fields: dict[str, str]) -> int:
    """How many jobs a sweep makes: the product of its hp lists' lengths."""
    return math.prod(len(_sweep_values(v)) for k, v in fields.items() if k.startswith("hp."))


def sweep_specs(fields: dict[str, str], max_size: int, usage: str = SWEEP_USAGE) -> list[JobSpec]:
    """One :class:`JobSpec` per combination of the ``hp.`` lists, in a stable order, named
    ``<name>-<n>``. The size is checked before anything is expanded, so an absurd grid costs
    nothing."""
    grid = {k: _sweep_values(v) for k, v in fields.items() if k.startswith("hp.")}
    if not any(len(values) > 1 for values in grid.values()):
        raise BadCommand(["a sweep needs at least one hp.<name> with a comma list, e.g. hp.lr=1e-5,3e-5"], usage)
    size = math.prod(len(values) for values in grid.values())
    if size > max_size:
        raise BadCommand([f"this sweep has {size:,} combinations; the limit is {max_size:,}"], usage)
    for key, values in grid.items():
        if len(set(values)) != len(values):
            raise BadCommand([f"{key} lists a value twice"], usage)
        if any(v == "" for v in values):
            raise BadCommand([f"{key} has an empty value in its list"], usage)
    sweep_objective(fields, usage)
    fields = {k: v for k, v in fields.items() if k != "objective"}
    base_name = fields.get("name", "")
    width = len(str(size))
    keys = list(grid)
    specs = []
    for index, combination in enumerate(itertools.product(*(grid[k] for k in keys))):
        chosen = dict(zip(keys, combination, strict=True))
        one = {**fields, **chosen, "name": f"{base_name}-{index + 1:0{width}d}" if base_name else ""}
        spec = job_spec(one, usage)
        specs.append(
            JobSpec(
                name=spec.name,
                job_args=spec.job_args,
                priority=spec.priority,
                retry_budget=spec.retry_budget,
                preset=spec.preset,
                hyperparameters={k[3:]: v for k, v in chosen.items()},
                notify=spec.notify,
                stall_alert_seconds=spec.stall_alert_seconds,
                fallback_types=spec.fallback_types,
                plan=spec.plan,
                plan_fallback=spec.plan_fallback,
            )
        )
    return specs


def sweep_objective(fields: dict[str, str], usage: str = SWEEP_USAGE) -> Objective | None:
    """The sweep's ``objective=`` (None without one); BadCommand unless it names one of the
    sweep's ``metric.<name>`` definitions."""
    value = fields.get("objective", "")
    if not value:
        return None
    try:
        objective = parse_objective(value)
    except ValueError as exc:
        raise BadCommand([f"objective: {exc}"], usage) from None
    defined = [k[len("metric.") :] for k in fields if k.startswith("metric.")]
    if objective.metric not in defined:
        hint = f"defined: {', '.join(defined)}" if defined else "define it with metric.<name>=<regex>"
        raise BadCommand([f"objective: {shorten(objective.metric)!r} is not a defined metric ({hint})"], usage)
    return objective


def _sweep_values(value: str) -> list[str]:
    return [part.strip() for part in value.split(",")]


_T = TypeVar("_T")


def _request(fields: dict[str, str], problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The CreateTrainingJob request dict and Trainbot's knobs from grammar fields."""
    missing = [key for key in REQUIRED if not fields.get(key)]
    for key in missing:
        problems.append(f"{key} is missing: e.g. {key}={EXAMPLES[key]}")
    knobs: dict[str, Any] = {"name": fields.get("name", "")}
    name = knobs["name"]
    if name and (len(name) > MAX_JOB_NAME or not _JOB_NAME.fullmatch(name)):
        problems.append(f"name: {shorten(name)!r} must be 1-{MAX_JOB_NAME} letters, digits, '.', '-' or '_'")

    request: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    stopping: dict[str, Any] = {}
    channels: list[dict[str, Any]] = []
    hyper: dict[str, str] = {}
    tags: list[dict[str, str]] = []
    metrics: list[dict[str, str]] = []

    def attempt(key: str, convert: Callable[[str], _T]) -> _T | None:
        try:
            return convert(fields[key])
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            return None

    for key, value in fields.items():
        if key == "image" and value:
            request["AlgorithmSpecification"] = {"TrainingImage": value}
        elif key == "role" and value:
            request["RoleArn"] = value
        elif key == "output" and value:
            request["OutputDataConfig"] = {"S3OutputPath": value}
        elif key == "instance" and value:
            types = [part.strip() for part in value.split(",")]
            resources["InstanceType"] = types[0]
            if len(types) > 1:
                # A fallback list; the model checks the first type itself (with its hints).
                problems.extend(instance_list_problems(types, first_checked=True))
                knobs["fallback_types"] = tuple(types[1:])
        elif key == "count":
            resources["InstanceCount"] = attempt(
                key, lambda v: whole_number(v, 1, MAX_INSTANCE_COUNT, f"count is 1 to {MAX_INSTANCE_COUNT}")
            )
        elif key == "volume":
            resources["VolumeSizeInGB"] = attempt(
                key, lambda v: whole_number(v, 1, MAX_VOLUME_GB, f"volume is 1 to {MAX_VOLUME_GB} GB")
            )
        elif key == "max_runtime":
            stopping["MaxRuntimeInSeconds"] = attempt(key, duration)
        elif key == "max_wait":
            stopping["MaxWaitTimeInSeconds"] = attempt(key, duration)
        elif key == "spot":
            request["EnableManagedSpotTraining"] = attempt(key, boolean)
        elif key == "checkpoint" and value:
            request["CheckpointConfig"] = {"S3Uri": value}
        elif key == "priority":
            knobs["priority"] = attempt(
                key, lambda v: whole_number(v, 0, MAX_PRIORITY, f"priority is 0 (lowest) to {MAX_PRIORITY} (highest)")
            )
        elif key == "retries":
            knobs["retry_budget"] = attempt(
                key, lambda v: whole_number(v, 0, MAX_RETRY_BUDGET, f"retries is 0 to {MAX_RETRY_BUDGET}")
            )
        elif key == "notify":
            knobs["notify"] = attempt(key, _notify_mode)
        elif key == "stall_alert":
            knobs["stall_alert_seconds"] = attempt(key, _stall_alert)
        elif key == "plan":
            problem = None if value.strip().lower() == NO_PLAN else plan_name_problem(value.strip())
            if problem:
                problems.append(f"plan: {problem}")
            else:
                knobs["plan"] = value.strip()
        elif key == "plan_fallback":
            if value.strip().lower() not in (FALLBACK_ONDEMAND, "none"):
                problems.append(f"plan_fallback: {shorten(value)!r} is not {FALLBACK_ONDEMAND} or none")
            else:
                knobs["plan_fallback"] = value.strip().lower() == FALLBACK_ONDEMAND
        elif key == "input" or key.startswith("input."):
            channel = "train" if key == "input" else key[len("input.") :]
            channels.append({"ChannelName": channel, "DataSource": {"S3DataSource": {"S3Uri": value}}})
        elif key.startswith("hp."):
            hyper[key[3:]] = value
        elif key.startswith("tag."):
            tags.append({"Key": key[4:], "Value": value})
        elif key.startswith("metric."):
            metric = {"Name": key[len("metric.") :], "Regex": value}
            from pydantic import ValidationError

            from backend.domain.model import MetricDefinition

            try:
                MetricDefinition.model_validate(metric)
            except ValidationError as exc:
                problems.extend(f"{key}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors())
            else:
                metrics.append(metric)
    if knobs.get("fallback_types") and knobs.get("plan") and knobs["plan"].lower() != NO_PLAN:
        problems.append("plan: a job on a training plan runs on the plan's instance type; give one instance=, not a list")
    if metrics and "AlgorithmSpecification" in request:
        request["AlgorithmSpecification"]["MetricDefinitions"] = metrics
    if resources.get("InstanceType"):
        request["ResourceConfig"] = {k: v for k, v in resources.items() if v is not None}
    stopping = {k: v for k, v in stopping.items() if v is not None}
    if stopping:
        request["StoppingCondition"] = stopping
    if channels:
        request["InputDataConfig"] = channels
    if hyper:
        request["HyperParameters"] = hyper
    if tags:
        request["Tags"] = tags
    knobs = {k: v for k, v in knobs.items() if v is not None}
    return request, knobs


def _stall_alert(value: str) -> int:
    """``stall_alert=45m``: warn once when the job writes no log line for that long; 0 or
    ``off`` turns the team default off for this job."""
    if value.strip().lower() in ("off", "0"):
        return 0
    seconds = duration(value)
    if seconds < 60:
        raise ValueError("stall_alert is at least 1m (or off)")
    return seconds


def _notify_mode(value: str) -> NotifyMode:
    try:
        return NotifyMode(value.strip().lower())
    except ValueError:
        raise ValueError(f"notify is {', '.join(m.value for m in NotifyMode)}") from None


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        if error["type"] == "missing":
            continue
        label = label_of(tuple(error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{label}: {message}" if label != "request" else message)
    return problems
