"""The `/train` command grammar: command text in, a typed request out.

This grammar is a fixed point (other tools drive the bot with it), so it lives in one place and
knows nothing of Slack's API or DynamoDB. :func:`parse` turns the slash command's text into one
of the request dataclasses below. The ``key=value`` fields of a submit, sweep or preset are
read by :mod:`backend.domain.spec` (shared with the CLI), which turns them into validated
``JobArgs``. Every mistake is a :class:`~backend.domain.spec.BadCommand` whose problems name
the field the way the grammar names it and whose ``usage`` shows the right form, so the bot
can answer politely without guessing.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from backend.domain.spec import (
    PRESET_NAME,
    PRESET_USAGE,
    SUBMIT_USAGE,
    SWEEP_USAGE,
    BadCommand,
    parse_fields,
    shorten,
    whole_number,
)
from backend.domain.status import JobStatus
from backend.domain.terms import JOB_ID_PATTERN

# A sweep's id (backend.services.submit.sweep_id_for): no job id has 16 characters after its
# last dash, so the two never collide.
SWEEP_ID = re.compile(r"^sw-[0-9a-f]{16}$")
MAX_TEXT = 8000  # Slack caps a command at 4,000 characters; anything longer is not from Slack
# Slack clients turn typed quotes into typographic ones; the grammar means the plain ones.
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})

USAGE = {
    "submit": SUBMIT_USAGE,
    "sweep": SWEEP_USAGE,
    "status": "/train status <JobId or name>",
    "list": "/train list [mine|all] [status=Failed]",
    "stop": "/train stop <JobId or name>   (or a sweep's id, sw-…: every job of it that has not ended)",
    "retry": "/train retry <JobId or name>",
    "stats": "/train stats [mine|all|user=U0123ABCD] [days=14] [preset=nlp]",
    "preset": PRESET_USAGE,
    "queue": "/train queue [instance=ml.p4d.24xlarge] [page=2]",
    "budget": "/train budget [team=nlp]",
    "plans": "/train plans",
}


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
class StopSweep:
    """``/train stop sw-…``: stop every job of the sweep that has not ended."""

    sweep_id: str


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
class Plans:
    """The team's training plans (reserved capacity): window, type, in use, jobs waiting."""


@dataclass(frozen=True)
class Queue:
    """The queue in launch order with why each job waits, optionally for one instance type."""

    instance_type: str | None = None
    page: int = 1


@dataclass(frozen=True)
class Budget:
    """A team's instance-hours this week against its budget (default: the asker's team)."""

    team: str | None = None


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
    Help | OpenSubmitModal | Submit | Sweep | Status | ListJobs | Stop | StopSweep | Retry
    | PresetSave | PresetList | PresetShow | PresetDelete | Stats | Queue | Budget | Plans
)


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
        if verb == "stop" and SWEEP_ID.match(job_id):
            return StopSweep(job_id)
        return Status(job_id) if verb == "status" else Stop(job_id) if verb == "stop" else Retry(job_id)
    if verb == "list":
        return _parse_list(tokens(rest, USAGE["list"]))
    if verb in ("preset", "presets"):
        return _parse_preset(tokens(rest, USAGE["preset"]))
    if verb == "stats":
        return _parse_stats(tokens(rest, USAGE["stats"]))
    if verb == "queue":
        return _parse_queue(tokens(rest, USAGE["queue"]))
    if verb == "budget":
        return _parse_budget(tokens(rest, USAGE["budget"]))
    if verb == "plans":
        if rest:
            raise BadCommand([f"/train plans takes no arguments, not {rest[:40]!r}"], USAGE["plans"])
        return Plans()
    return Help(unknown=verb[:40])


_TEAM = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _parse_budget(words: list[str]) -> Budget:
    if not words:
        return Budget()
    key, _, value = words[0].partition("=")
    if len(words) != 1 or key.lower() != "team" or not _TEAM.match(value):
        raise BadCommand(["budget takes at most team=<name> (letters, digits, . _ -)"], USAGE["budget"])
    return Budget(team=value)


def _one_job_id(verb: str, words: list[str]) -> str:
    if len(words) != 1:
        raise BadCommand([f"{verb} takes exactly one job id or name"], USAGE[verb])
    job_id = words[0]
    if not JOB_ID_PATTERN.match(job_id):
        raise BadCommand([f"{shorten(job_id)!r} is not a job id (ids look like bert-lr3-k2x9qz)"], USAGE[verb])
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
                    f"status: {shorten(wanted)!r} is not a status; one of {', '.join(s.value for s in JobStatus)}"
                )
        else:
            problems.append(f"{shorten(word)!r} is not understood here")
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
                problems.append(f"user: {shorten(value)!r} is not a Slack member ID; write e.g. user=U0123ABCD (profile → ⋮ → Copy member ID)")
            else:
                scope, user_id = "user", match["id"]
        elif eq and key == "days":
            try:
                days = whole_number(value, 1, STATS_MAX_DAYS, f"days is 1 to {STATS_MAX_DAYS}")
            except ValueError as exc:
                problems.append(f"days: {exc}")
        elif eq and key == "preset":
            if not PRESET_NAME.match(value.lower()):
                problems.append(f"preset: {shorten(value)!r} is not a preset name")
            else:
                preset = value.lower()
        else:
            problems.append(f"{shorten(word)!r} is not understood here")
    if problems:
        raise BadCommand(problems, usage)
    return Stats(scope, user_id, days, preset)


def _parse_queue(words: list[str]) -> Queue:
    from backend.domain.instance_types import TRAINING_INSTANCE_TYPES

    usage = USAGE["queue"]
    instance_type, page = None, 1
    problems = []
    for word in words:
        key, eq, value = word.partition("=")
        key = key.lower()
        if eq and key == "instance":
            if value not in TRAINING_INSTANCE_TYPES:
                problems.append(f"instance: {shorten(value)!r} is not a SageMaker training instance type")
            else:
                instance_type = value
        elif eq and key == "page":
            try:
                page = whole_number(value, 1, 10_000, "page is a whole number from 1")
            except ValueError as exc:
                problems.append(f"page: {exc}")
        else:
            problems.append(f"{shorten(word)!r} is not understood here")
    if problems:
        raise BadCommand(problems, usage)
    return Queue(instance_type, page)


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
                [f"{shorten(args[0])!r} is not a preset name: 1-40 of a-z, 0-9, '.', '-', '_'"], usage
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
    raise BadCommand([f"{shorten(words[0])!r} is not a preset action (save, list, show, delete)"], usage)
