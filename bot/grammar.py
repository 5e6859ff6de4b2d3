"""The `/train` command grammar: command text in, a typed request out.

This grammar is a fixed point (other tools drive the bot with it), so it lives in one place and
knows nothing of Slack or DynamoDB. :func:`parse` turns the slash command's text into one of the
request dataclasses below; :func:`job_spec` and :func:`sweep_specs` turn ``key=value`` fields
(after a preset has been merged in) into validated ``JobArgs``. Every mistake is a
:class:`BadCommand` whose problems name the field the way the grammar names it and whose
``usage`` shows the right form, so the bot can answer politely without guessing.
"""

from __future__ import annotations

import itertools
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from backend.domain.model import JOB_ID_PATTERN, JobArgs, label_of
from backend.domain.status import JobStatus
from backend.errors import InvalidRequest

MAX_TEXT = 8000  # Slack caps a command at 4,000 characters; anything longer is not from Slack
MAX_NAME = 40
PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
_HP_KEY = re.compile(r"^[A-Za-z0-9_.:/\-]{1,256}$")
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}$")
_DURATION_PART = re.compile(r"(\d+)([dhms]?)")
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}
# Slack clients turn typed quotes into typographic ones; the grammar means the plain ones.
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})

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
)
PREFIX_KEYS = ("hp.", "input.", "tag.")
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
    "preset": "nlp",
}

SUBMIT_USAGE = (
    "/train submit name=bert-lr3 image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge input=s3://data-bucket/train output=s3://out-bucket/runs "
    "role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime=1h hp.lr=3e-5 hp.epochs=3"
)
USAGE = {
    "submit": SUBMIT_USAGE + "\n/train submit preset=nlp name=bert-lr3 hp.lr=3e-5",
    "sweep": "/train sweep preset=nlp name=bert-grid hp.lr=1e-5,3e-5,1e-4 hp.batch=16,32",
    "status": "/train status <JobId>",
    "list": "/train list [mine|all] [status=Failed]",
    "stop": "/train stop <JobId>",
    "retry": "/train retry <JobId>",
    "stats": "/train stats [mine|all|user=U0123ABCD] [days=14] [preset=nlp]",
    "preset": (
        "/train preset save nlp image=… role=… output=s3://out-bucket/runs instance=ml.g5.xlarge\n"
        "/train preset list\n/train preset show nlp\n/train preset delete nlp"
    ),
}


class BadCommand(InvalidRequest):
    """Command text the grammar cannot accept; ``usage`` is the right form to show."""

    def __init__(self, problems: list[str], usage: str = "") -> None:
        super().__init__(problems)
        self.usage = usage


# --- typed requests ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Help:
    unknown: str = ""  # the subcommand we did not understand, if that is why help is shown


@dataclass(frozen=True)
class OpenSubmitModal:
    pass


@dataclass(frozen=True)
class Submit:
    fields: dict[str, str]


@dataclass(frozen=True)
class Sweep:
    fields: dict[str, str]


@dataclass(frozen=True)
class Status:
    job_id: str


@dataclass(frozen=True)
class ListJobs:
    scope: str = "mine"  # "mine" | "all"
    status: JobStatus | None = None


@dataclass(frozen=True)
class Stop:
    job_id: str


@dataclass(frozen=True)
class Retry:
    job_id: str


@dataclass(frozen=True)
class Stats:
    """How jobs went over the last ``days`` days: everyone's, mine, or one user's."""

    scope: str = "all"  # "all" | "mine" | "user"
    user_id: str | None = None  # with scope "user"
    days: int = 14
    preset: str | None = None


@dataclass(frozen=True)
class PresetSave:
    name: str
    fields: dict[str, str]


@dataclass(frozen=True)
class PresetList:
    pass


@dataclass(frozen=True)
class PresetShow:
    name: str


@dataclass(frozen=True)
class PresetDelete:
    name: str


Request = (
    Help | OpenSubmitModal | Submit | Sweep | Status | ListJobs | Stop | Retry
    | PresetSave | PresetList | PresetShow | PresetDelete | Stats
)


@dataclass(frozen=True)
class JobSpec:
    """One job, ready to register: a validated request plus Trainbot's own knobs."""

    name: str
    job_args: JobArgs
    priority: int = 5
    retry_budget: int = 2
    preset: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)  # a sweep's combination


# --- parsing ----------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Undo Slack's entity escaping of ``& < >`` and straighten typographic quotes."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").translate(_SMART_QUOTES)


def tokens(text: str, usage: str = "") -> list[str]:
    """Split on whitespace, honouring quotes (``hp.note="two words"``)."""
    try:
        return shlex.split(text)
    except ValueError:
        raise BadCommand(["a quote is not closed: every \" or ' needs its partner"], usage) from None


def parse(text: str) -> Request:
    """The request ``text`` (the slash command's text) asks for; :class:`BadCommand` if malformed."""
    if len(text) > MAX_TEXT:
        raise BadCommand([f"the command is {len(text)} characters long; {MAX_TEXT} at most"], "")
    text = normalize(text).strip()
    if not text:
        return Help()
    verb, _, rest = text.partition(" ")
    verb = verb.lower()
    rest = rest.strip()
    if verb == "help":
        return Help()
    if verb == "submit":
        if not rest:
            return OpenSubmitModal()
        return Submit(parse_fields(tokens(rest, USAGE["submit"]), USAGE["submit"]))
    if verb == "sweep":
        if not rest:
            raise BadCommand(["a sweep needs its fields and at least one hp.<name>=a,b,c list"], USAGE["sweep"])
        return Sweep(parse_fields(tokens(rest, USAGE["sweep"]), USAGE["sweep"]))
    if verb in ("status", "stop", "retry"):
        job_id = _one_job_id(verb, tokens(rest, USAGE[verb]))
        return {"status": Status, "stop": Stop, "retry": Retry}[verb](job_id)
    if verb == "list":
        return _parse_list(tokens(rest, USAGE["list"]))
    if verb in ("preset", "presets"):
        return _parse_preset(tokens(rest, USAGE["preset"]))
    if verb == "stats":
        return _parse_stats(tokens(rest, USAGE["stats"]))
    return Help(unknown=verb[:40])


def _one_job_id(verb: str, words: list[str]) -> str:
    if len(words) != 1:
        raise BadCommand([f"{verb} takes exactly one job id"], USAGE[verb])
    job_id = words[0]
    if not JOB_ID_PATTERN.match(job_id):
        raise BadCommand([f"{_shorten(job_id)!r} is not a job id (ids look like bert-lr3-k2x9qz)"], USAGE[verb])
    return job_id


def _parse_list(words: list[str]) -> ListJobs:
    scope, status = "mine", None
    problems = []
    for word in words:
        lowered = word.lower()
        if lowered in ("mine", "all"):
            scope = lowered
        elif lowered.startswith("status="):
            wanted = word.split("=", 1)[1]
            status = next((s for s in JobStatus if s.value.lower() == wanted.lower()), None)
            if status is None:
                problems.append(
                    f"status: {_shorten(wanted)!r} is not a status; one of {', '.join(s.value for s in JobStatus)}"
                )
        else:
            problems.append(f"{_shorten(word)!r} is not understood here")
    if problems:
        raise BadCommand(problems, USAGE["list"])
    return ListJobs(scope, status)


STATS_MAX_DAYS = 366  # backend.services.stats.MAX_DAYS (not imported: the ack stays light)
# A Slack member id as typed (U123ABC), or a mention as Slack sends it when the command
# escapes users (<@U123ABC|alice>); without escaping a mention arrives as plain "@alice".
_USER_REF = re.compile(r"^(?:<@)?(?P<id>[UW][A-Z0-9]{2,20})(?:\|[^>]*)?>?$")


def _parse_stats(words: list[str]) -> Stats:
    usage = USAGE["stats"]
    scope, user_id, days, preset = "all", None, 14, None
    problems = []
    for word in words:
        key, eq, value = word.partition("=")
        key = key.lower()
        if not eq and key in ("mine", "all"):
            scope, user_id = key, None
        elif eq and key == "user":
            match = _USER_REF.match(value.strip())
            if match is None:
                problems.append(f"user: {_shorten(value)!r} is not a Slack member ID; write e.g. user=U0123ABCD (profile → ⋮ → Copy member ID)")
            else:
                scope, user_id = "user", match["id"]
        elif eq and key == "days":
            try:
                days = _integer(value, 1, STATS_MAX_DAYS, f"days is 1 to {STATS_MAX_DAYS}")
            except ValueError as exc:
                problems.append(f"days: {exc}")
        elif eq and key == "preset":
            if not PRESET_NAME.match(value.lower()):
                problems.append(f"preset: {_shorten(value)!r} is not a preset name")
            else:
                preset = value.lower()
        else:
            problems.append(f"{_shorten(word)!r} is not understood here")
    if problems:
        raise BadCommand(problems, usage)
    return Stats(scope, user_id, days, preset)


def _parse_preset(words: list[str]) -> Request:
    usage = USAGE["preset"]
    if not words:
        return PresetList()
    action, args = words[0].lower(), words[1:]
    if action == "list" and not args:
        return PresetList()
    if action in ("save", "show", "delete"):
        if not args:
            raise BadCommand([f"preset {action} needs a preset name"], usage)
        name = args[0].lower()
        if not PRESET_NAME.match(name):
            raise BadCommand(
                [f"{_shorten(args[0])!r} is not a preset name: 1-40 of a-z, 0-9, '.', '-', '_'"], usage
            )
        if action == "save":
            fields = parse_fields(args[1:], usage)
            if not fields:
                raise BadCommand(["preset save needs at least one key=value"], usage)
            for key in ("name", "preset"):
                if key in fields:
                    raise BadCommand([f"{key}: a preset cannot set {key}"], usage)
            return PresetSave(name, fields)
        if len(args) > 1:
            raise BadCommand([f"preset {action} takes only a preset name"], usage)
        return PresetShow(name) if action == "show" else PresetDelete(name)
    raise BadCommand([f"{_shorten(words[0])!r} is not a preset action (save, list, show, delete)"], usage)


def parse_fields(words: list[str], usage: str) -> dict[str, str]:
    """``key=value`` words as a dict; unknown, duplicated or malformed keys are problems."""
    fields: dict[str, str] = {}
    problems: list[str] = []
    for word in words:
        key, eq, value = word.partition("=")
        key = key.strip()
        if not eq:
            problems.append(f"{_shorten(word)!r} is not key=value")
            continue
        if not is_known_key(key):
            problems.append(f"{_shorten(key)!r} is not a key; keys are {', '.join(JOB_KEYS)}, hp.<name>, input.<channel>")
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
            return bool((_TAG_KEY if prefix == "tag." else _HP_KEY).match(rest))
    return False


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
        raise ValueError(f"{_shorten(value)!r} is not a duration; write e.g. 1h, 90m, 1h30m or 3600 (seconds)")
    return total


def _integer(value: str, low: int, high: int, what: str) -> int:
    if not re.fullmatch(r"\d{1,6}", value.strip()):
        raise ValueError(f"{_shorten(value)!r} is not a whole number; {what}")
    number = int(value)
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range; {what}")
    return number


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise ValueError(f"{_shorten(value)!r} is not true or false")


# --- fields -> validated job specs ------------------------------------------------------------


def job_spec(fields: dict[str, str], usage: str = USAGE["submit"]) -> JobSpec:
    """Validate ``fields`` (preset already merged in) into one :class:`JobSpec`."""
    problems: list[str] = []
    request, knobs = _request(fields, problems)
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


def sweep_specs(fields: dict[str, str], max_size: int, usage: str = USAGE["sweep"]) -> list[JobSpec]:
    """One :class:`JobSpec` per combination of the ``hp.`` lists, in a stable order.

    The size is checked before anything is expanded, so an absurd grid costs nothing.
    """
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
            )
        )
    return specs


def _sweep_values(value: str) -> list[str]:
    return [part.strip() for part in value.split(",")]


def _request(fields: dict[str, str], problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The CreateTrainingJob request dict and Trainbot's knobs from grammar fields."""
    missing = [key for key in REQUIRED if not fields.get(key)]
    for key in missing:
        problems.append(f"{key} is missing: e.g. {key}={EXAMPLES[key]}")
    knobs: dict[str, Any] = {"name": fields.get("name", "")}
    name = knobs["name"]
    if name and (len(name) > MAX_NAME or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name)):
        problems.append(f"name: {_shorten(name)!r} must be 1-{MAX_NAME} letters, digits, '.', '-' or '_'")

    request: dict[str, Any] = {}
    resources: dict[str, Any] = {}
    stopping: dict[str, Any] = {}
    channels: list[dict[str, Any]] = []
    hyper: dict[str, str] = {}
    tags: list[dict[str, str]] = []

    def attempt(key: str, convert):  # noqa: ANN001, ANN202 - small local helper
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
            resources["InstanceType"] = value
        elif key == "count":
            resources["InstanceCount"] = attempt(key, lambda v: _integer(v, 1, 100, "count is 1 to 100"))
        elif key == "volume":
            resources["VolumeSizeInGB"] = attempt(key, lambda v: _integer(v, 1, 16384, "volume is 1 to 16384 GB"))
        elif key == "max_runtime":
            stopping["MaxRuntimeInSeconds"] = attempt(key, duration)
        elif key == "max_wait":
            stopping["MaxWaitTimeInSeconds"] = attempt(key, duration)
        elif key == "spot":
            request["EnableManagedSpotTraining"] = attempt(key, _boolean)
        elif key == "checkpoint" and value:
            request["CheckpointConfig"] = {"S3Uri": value}
        elif key == "priority":
            knobs["priority"] = attempt(key, lambda v: _integer(v, 0, 9, "priority is 0 (lowest) to 9 (highest)"))
        elif key == "retries":
            knobs["retry_budget"] = attempt(key, lambda v: _integer(v, 0, 20, "retries is 0 to 20"))
        elif key == "input" or key.startswith("input."):
            channel = "train" if key == "input" else key[len("input.") :]
            channels.append({"ChannelName": channel, "DataSource": {"S3DataSource": {"S3Uri": value}}})
        elif key.startswith("hp."):
            hyper[key[3:]] = value
        elif key.startswith("tag."):
            tags.append({"Key": key[4:], "Value": value})
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


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        if error["type"] == "missing":
            continue
        label = label_of(tuple(error["loc"]))
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{label}: {message}" if label != "request" else message)
    return problems


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
