"""Configuration: settings read once per cold start from the environment, and validated.

Logic never reads ``os.environ``; entry points call :meth:`Settings.from_env` and hand the
result to the composition root. A wrong deploy fails loudly, naming the variable.

Plain Python, not a pydantic model (issue 26): every cold start reads the settings, and a
pydantic model costs its import (about 50 ms of CPU) plus building the model's validator, which
an idle launcher or monitor run would otherwise be the only thing to need. The parsing is
pydantic's lax parsing of these types, messages included (tests/unit/test_config.py holds the
two to the same answers): ``60``, ``" 60 "`` and ``"1e2"`` are numbers, ``"5.0"`` an integer,
``"on"``/``"TRUE"``/``"0"`` booleans, JSON or ``a=1,b=2`` mappings.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from backend.domain.instance_types import TRAINING_INSTANCE_TYPES
from backend.domain.plans import parse_team_plans
from backend.domain.policy import RetryPolicy
from backend.domain.terms import JOB_ID_PREFIX
from backend.errors import ConfigError

SLACK_PUBLIC_API = "https://slack.com/api/"


class _Invalid(ValueError):
    """One variable's problem, worded as pydantic words it."""


_REQUIRED: Any = object()
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_DECIMAL_INT = re.compile(r"^\s*[+-]?[0-9_]+\.0*\s*$")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("Input should be a valid string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise _Invalid("Input should be a valid integer, got a number with a fractional part")
        return int(value)
    if isinstance(value, str):
        text = value.split(".", 1)[0] if _DECIMAL_INT.match(value) else value
        try:
            return int(text)
        except ValueError:
            raise _Invalid("Input should be a valid integer, unable to parse string as an integer") from None
    raise _Invalid("Input should be a valid integer")


def _float(value: Any) -> float:
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _Invalid("Input should be a valid number, unable to parse string as a number") from None
    raise _Invalid("Input should be a valid number")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    raise _Invalid("Input should be a valid boolean, unable to interpret input")


def _names(value: Any) -> frozenset[str]:
    """A set of names: ``"U1, U2"`` (commas or semicolons) or any collection of strings."""
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
    if not isinstance(value, list | tuple | set | frozenset):
        raise _Invalid("Input should be a valid frozenset")
    return frozenset(_str(v) for v in value)


def _mapping_text(value: Any) -> Any:
    """JSON (``{"nlp": 500}``) or the shorter ``nlp=500,vision=200`` a template parameter takes."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise _Invalid(f'Value error, must be JSON like {{"nlp": 500}} or nlp=500,vision=200 ({exc.msg})') from exc
        pairs = [part.split("=", 1) for part in text.replace(";", ",").split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise _Invalid('Value error, must be JSON like {"nlp": 500} or nlp=500,vision=200')
        return {k.strip(): v.strip() for k, v in pairs}
    return value


def _dict_of(parse: Callable[[Any], Any]) -> Callable[[Any], dict[str, Any]]:
    def parsed(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Invalid("Input should be a valid dictionary")
        return {_str(k): parse(v) for k, v in value.items()}

    return parsed


def _known_types(value: Any) -> Any:
    # A typo here would silently price, limit or hold nothing: a guard must fail loudly.
    unknown = sorted(set(value) - TRAINING_INSTANCE_TYPES)
    if unknown:
        raise _Invalid(f"Value error, unknown instance type(s): {', '.join(unknown)}")
    return value


def _non_negative(value: dict[str, float]) -> dict[str, float]:
    if any(amount < 0 for amount in value.values()):
        raise _Invalid("Value error, amounts must not be negative")
    return value


def _limits(value: Any) -> dict[str, int]:
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise _Invalid(f'Value error, must be JSON like {{"ml.p4d.24xlarge": 4}} ({exc.msg})') from exc
    if not isinstance(value, dict):
        raise _Invalid('Value error, must be a JSON object like {"ml.p4d.24xlarge": 4}')
    return _dict_of(_int)(_known_types(value))


def _team_plans(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = parse_team_plans(value)
        except ValueError as exc:
            raise _Invalid(f"Value error, {exc}") from exc
    return _dict_of(_str)(value)


def _job_id_prefix(value: Any) -> str:
    if not JOB_ID_PREFIX.match(_str(value)):
        raise _Invalid("Value error, must be up to 12 lowercase letters, digits or dashes, not starting with a dash (e.g. tb-)")
    return value


def _api_url(value: Any) -> str:
    # slack_sdk joins method names onto base_url, which therefore needs its trailing slash.
    value = _str(value)
    return value if value.endswith("/") else value + "/"


def _budget_mode(value: Any) -> str:
    if value not in ("refuse", "approve"):
        raise _Invalid("Input should be 'refuse' or 'approve'")
    return str(value)


def _bounded(parse: Callable[[Any], Any], *, gt: float | None = None, ge: float | None = None, le: float | None = None) -> Callable[[Any], Any]:
    def checked(value: Any) -> Any:
        number = parse(value)
        if gt is not None and not number > gt:
            raise _Invalid(f"Input should be greater than {gt}")
        if ge is not None and not number >= ge:
            raise _Invalid(f"Input should be greater than or equal to {ge}")
        if le is not None and not number <= le:
            raise _Invalid(f"Input should be less than or equal to {le}")
        return number

    return checked


def _table_name(value: Any) -> str:
    if len(_str(value)) < 3:
        raise _Invalid("String should have at least 3 characters")
    return value


@dataclass(frozen=True)
class Variable:
    """One setting: its environment variable, how its value is read, and its default."""

    alias: str
    parse: Callable[[Any], Any]
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def fresh_default(self) -> Any:
        return dict(self.default) if isinstance(self.default, dict) else self.default


_TWENTY_EIGHT_DAYS = 28 * 24 * 3600


class Settings:
    """Every setting, by its environment variable name (the alias) or its own name."""

    jobs_table_name: str
    notify_topic_arn: str
    slack_signing_secret: str
    slack_bot_token: str
    slack_secret_id: str
    slack_api_url: str
    slack_team_id: str
    allowed_users: frozenset[str]
    admin_users: frozenset[str]
    retry_base_seconds: float
    retry_max_seconds: float
    capacity_max_wait_seconds: float
    instance_limits: dict[str, int]
    sagemaker_calls_per_second: float
    sweep_confirm_size: int
    sweep_max_size: int
    job_id_prefix: str
    # Finished jobs expire (DynamoDB TTL on ExpiresAt) this many days after they end; 0 keeps
    # them forever. `trainbot export` saves history before it goes.
    retention_days: int
    # The launcher function the bot invokes asynchronously when it registers jobs (start on
    # submit); empty: jobs wait for the launcher's schedule.
    launcher_function: str
    # The chart function the bot invokes asynchronously to draw `/train stats`' chart (the bot's
    # artifact carries no chart library); empty: the stats answer comes without a chart.
    chart_function: str
    aws_region: str
    # The cost guard (backend.domain.cost, backend.services.budget): prices over the repo's
    # table, approval thresholds (0 / empty: off), weekly instance-hour budgets per team.
    instance_prices: dict[str, float]
    approval_instance_hours: float
    approval_instance_types: frozenset[str]
    approval_sweep_size: int
    team_budgets: dict[str, float]
    user_teams: dict[str, str]
    # Each team's default training plan (backend.domain.plans): ``nlp=p5-dec,vision=p4-q1``;
    # a job of that team (TRAINBOT_USER_TEAMS) without ``plan=`` runs on it.
    team_plans: dict[str, str]
    budget_mode: Literal["refuse", "approve"]
    # Estimates use AWS's list prices, fetched daily by the monitor into prices#<region>
    # (backend.services.prices); off: the built-in table only (no Price List calls, no reads).
    price_list: bool
    # Stall warning for jobs that do not set stall_alert: seconds without a new log line before
    # the thread is told once (0: off). Failure forensics read the training jobs' CloudWatch log.
    stall_alert_seconds: int
    # How long before a training plan's end a job running on it, whose max runtime reaches past
    # the point where SageMaker stops the plan's jobs (30 minutes before the end), is warned in
    # its thread (0: off). Two hours: time to save a checkpoint before SageMaker stops it, and
    # for an operator to extend the plan (AWS takes extensions until an hour before the end).
    plan_end_warning_seconds: int
    # A running job's card shows its metrics' latest values, from the Describe the monitor's
    # sweep makes anyway: stored on the attempt when they changed, at most once this many
    # seconds (one write each, and a paced card update); 0: not shown while running.
    live_metrics_seconds: int

    VARIABLES: ClassVar[dict[str, Variable]] = {
        "jobs_table_name": Variable("JOBS_TABLE_NAME", _table_name),
        "notify_topic_arn": Variable("NOTIFY_TOPIC_ARN", _str, ""),
        "slack_signing_secret": Variable("SLACK_SIGNING_SECRET", _str, ""),
        "slack_bot_token": Variable("SLACK_BOT_TOKEN", _str, ""),
        "slack_secret_id": Variable("SLACK_SECRET_ID", _str, ""),
        "slack_api_url": Variable("SLACK_API_URL", _api_url, SLACK_PUBLIC_API),
        "slack_team_id": Variable("SLACK_TEAM_ID", _str, ""),
        "allowed_users": Variable("TRAINBOT_ALLOWED_USERS", _names, frozenset({"*"})),
        "admin_users": Variable("TRAINBOT_ADMIN_USERS", _names, frozenset()),
        "retry_base_seconds": Variable("TRAINBOT_RETRY_BASE_SECONDS", _bounded(_float, gt=0), 60.0),
        "retry_max_seconds": Variable("TRAINBOT_RETRY_MAX_SECONDS", _bounded(_float, gt=0), 1800.0),
        "capacity_max_wait_seconds": Variable("TRAINBOT_CAPACITY_MAX_WAIT_SECONDS", _bounded(_float, gt=0), 24 * 3600.0),
        "instance_limits": Variable("TRAINBOT_INSTANCE_LIMITS", _limits, {}),
        "sagemaker_calls_per_second": Variable("TRAINBOT_SAGEMAKER_CALLS_PER_SECOND", _bounded(_float, gt=0), 5.0),
        "sweep_confirm_size": Variable("TRAINBOT_SWEEP_CONFIRM_SIZE", _bounded(_int, ge=1), 100),
        "sweep_max_size": Variable("TRAINBOT_SWEEP_MAX_SIZE", _bounded(_int, ge=1), 2000),
        "job_id_prefix": Variable("TRAINBOT_JOB_ID_PREFIX", _job_id_prefix, ""),
        "retention_days": Variable("TRAINBOT_RETENTION_DAYS", _bounded(_int, ge=0, le=36500), 0),
        "launcher_function": Variable("TRAINBOT_LAUNCHER_FUNCTION", _str, ""),
        "chart_function": Variable("TRAINBOT_CHART_FUNCTION", _str, ""),
        "aws_region": Variable("AWS_REGION", _str, "us-east-1"),
        "instance_prices": Variable(
            "TRAINBOT_INSTANCE_PRICES", lambda v: _known_types(_non_negative(_dict_of(_float)(_mapping_text(v)))), {}
        ),
        "approval_instance_hours": Variable("TRAINBOT_APPROVAL_INSTANCE_HOURS", _bounded(_float, ge=0), 0.0),
        "approval_instance_types": Variable("TRAINBOT_APPROVAL_INSTANCE_TYPES", lambda v: _known_types(_names(v)), frozenset()),
        "approval_sweep_size": Variable("TRAINBOT_APPROVAL_SWEEP_SIZE", _bounded(_int, ge=0), 0),
        "team_budgets": Variable("TRAINBOT_TEAM_BUDGETS", lambda v: _non_negative(_dict_of(_float)(_mapping_text(v))), {}),
        "user_teams": Variable("TRAINBOT_USER_TEAMS", lambda v: _dict_of(_str)(_mapping_text(v)), {}),
        "team_plans": Variable("TRAINBOT_TEAM_PLANS", _team_plans, {}),
        "budget_mode": Variable("TRAINBOT_BUDGET_MODE", _budget_mode, "refuse"),
        "price_list": Variable("TRAINBOT_PRICE_LIST", _bool, False),
        "stall_alert_seconds": Variable("TRAINBOT_STALL_ALERT_SECONDS", _bounded(_int, ge=0, le=_TWENTY_EIGHT_DAYS), 0),
        "plan_end_warning_seconds": Variable("TRAINBOT_PLAN_END_WARNING_SECONDS", _bounded(_int, ge=0, le=_TWENTY_EIGHT_DAYS), 7200),
        "live_metrics_seconds": Variable("TRAINBOT_LIVE_METRICS_SECONDS", _bounded(_int, ge=0, le=24 * 3600), 300),
    }

    def __init__(self, **values: Any) -> None:
        """The settings from ``values``, each given by its variable's name (``JOBS_TABLE_NAME``)
        or its own (``jobs_table_name``), the variable's name first; others are ignored.
        ConfigError naming every variable that is missing or wrong."""
        problems: list[str] = []
        for name, variable in self.VARIABLES.items():
            given = values.get(variable.alias, values.get(name, _REQUIRED))
            if given is _REQUIRED:
                if variable.required:
                    problems.append(f"{variable.alias}: Field required")
                    continue
                value = variable.fresh_default()
            else:
                try:
                    value = variable.parse(given)
                except _Invalid as exc:
                    problems.append(f"{variable.alias}: {exc}")
                    continue
            object.__setattr__(self, name, value)
        if problems:
            raise ConfigError("invalid configuration: " + "; ".join(problems))

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable a setting is read from."""
        return [variable.alias for variable in cls.VARIABLES.values()]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``); raise
        :class:`ConfigError` naming every variable that is missing or wrong."""
        source = dict(os.environ if environ is None else environ)
        names = set(cls.variables())
        values: dict[str, Any] = {k: v for k, v in source.items() if k in names and v != ""}
        # Overrides (flags) beat the environment, whether named by field or by variable.
        for key, value in overrides.items():
            variable = cls.VARIABLES.get(key)
            values[variable.alias if variable is not None else key] = value
        return cls(**values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Settings are read once per cold start and never change ({name})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Settings are read once per cold start and never change ({name})")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.VARIABLES)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Settings) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(tuple(repr(v) for v in self._values()))

    def __repr__(self) -> str:
        return "Settings(" + ", ".join(f"{name}={getattr(self, name)!r}" for name in self.VARIABLES) + ")"

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            base_seconds=self.retry_base_seconds,
            max_seconds=self.retry_max_seconds,
            capacity_max_wait_seconds=self.capacity_max_wait_seconds,
        )

    def is_allowed(self, user_id: str) -> bool:
        return "*" in self.allowed_users or user_id in self.allowed_users or user_id in self.admin_users

    def is_admin(self, user_id: str) -> bool:
        return user_id in self.admin_users

    def team_of(self, user_id: str) -> str:
        """The user's team (TRAINBOT_USER_TEAMS); a user in no team is a team of one."""
        return self.user_teams.get(user_id, user_id)


