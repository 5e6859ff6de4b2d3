"""Configuration: a validated model read once per cold start from the environment.

Logic never reads ``os.environ``; entry points call :meth:`Settings.from_env` and hand the
result to the composition root. A wrong deploy fails loudly, naming the variable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from backend.domain.instance_types import TRAINING_INSTANCE_TYPES
from backend.domain.model import JOB_ID_PREFIX
from backend.domain.plans import parse_team_plans
from backend.domain.policy import RetryPolicy
from backend.errors import ConfigError

SLACK_PUBLIC_API = "https://slack.com/api/"


class Settings(BaseModel):
    """Every setting, by its environment variable name (the alias)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    jobs_table_name: str = Field(alias="JOBS_TABLE_NAME", min_length=3)
    notify_topic_arn: str = Field(default="", alias="NOTIFY_TOPIC_ARN")
    slack_signing_secret: str = Field(default="", alias="SLACK_SIGNING_SECRET")
    slack_bot_token: str = Field(default="", alias="SLACK_BOT_TOKEN")
    slack_secret_id: str = Field(default="", alias="SLACK_SECRET_ID")
    slack_api_url: str = Field(default=SLACK_PUBLIC_API, alias="SLACK_API_URL")
    slack_team_id: str = Field(default="", alias="SLACK_TEAM_ID")
    allowed_users: frozenset[str] = Field(default=frozenset({"*"}), alias="TRAINBOT_ALLOWED_USERS")
    admin_users: frozenset[str] = Field(default=frozenset(), alias="TRAINBOT_ADMIN_USERS")
    retry_base_seconds: float = Field(default=60.0, alias="TRAINBOT_RETRY_BASE_SECONDS", gt=0)
    retry_max_seconds: float = Field(default=1800.0, alias="TRAINBOT_RETRY_MAX_SECONDS", gt=0)
    capacity_max_wait_seconds: float = Field(default=24 * 3600.0, alias="TRAINBOT_CAPACITY_MAX_WAIT_SECONDS", gt=0)
    instance_limits: dict[str, int] = Field(default_factory=dict, alias="TRAINBOT_INSTANCE_LIMITS")
    sagemaker_calls_per_second: float = Field(default=5.0, alias="TRAINBOT_SAGEMAKER_CALLS_PER_SECOND", gt=0)
    sweep_confirm_size: int = Field(default=100, alias="TRAINBOT_SWEEP_CONFIRM_SIZE", ge=1)
    sweep_max_size: int = Field(default=2000, alias="TRAINBOT_SWEEP_MAX_SIZE", ge=1)
    job_id_prefix: str = Field(default="", alias="TRAINBOT_JOB_ID_PREFIX")
    # Finished jobs expire (DynamoDB TTL on ExpiresAt) this many days after they end; 0 keeps
    # them forever. `trainbot export` saves history before it goes.
    retention_days: int = Field(default=0, alias="TRAINBOT_RETENTION_DAYS", ge=0, le=36500)
    # The launcher function the bot invokes asynchronously when it registers jobs (start on
    # submit); empty: jobs wait for the launcher's schedule.
    launcher_function: str = Field(default="", alias="TRAINBOT_LAUNCHER_FUNCTION")
    # The chart function the bot invokes asynchronously to draw `/train stats`' chart (the bot's
    # artifact carries no chart library); empty: the stats answer comes without a chart.
    chart_function: str = Field(default="", alias="TRAINBOT_CHART_FUNCTION")
    aws_region: str = Field(default="us-east-1", alias="AWS_REGION")
    # The cost guard (backend.domain.cost, backend.services.budget): prices over the repo's
    # table, approval thresholds (0 / empty: off), weekly instance-hour budgets per team.
    instance_prices: dict[str, float] = Field(default_factory=dict, alias="TRAINBOT_INSTANCE_PRICES")
    approval_instance_hours: float = Field(default=0.0, alias="TRAINBOT_APPROVAL_INSTANCE_HOURS", ge=0)
    approval_instance_types: frozenset[str] = Field(default=frozenset(), alias="TRAINBOT_APPROVAL_INSTANCE_TYPES")
    approval_sweep_size: int = Field(default=0, alias="TRAINBOT_APPROVAL_SWEEP_SIZE", ge=0)
    team_budgets: dict[str, float] = Field(default_factory=dict, alias="TRAINBOT_TEAM_BUDGETS")
    user_teams: dict[str, str] = Field(default_factory=dict, alias="TRAINBOT_USER_TEAMS")
    # Each team's default training plan (backend.domain.plans): ``nlp=p5-dec,vision=p4-q1``;
    # a job of that team (TRAINBOT_USER_TEAMS) without ``plan=`` runs on it.
    team_plans: dict[str, str] = Field(default_factory=dict, alias="TRAINBOT_TEAM_PLANS")
    budget_mode: Literal["refuse", "approve"] = Field(default="refuse", alias="TRAINBOT_BUDGET_MODE")
    # Estimates use AWS's list prices, fetched daily by the monitor into prices#<region>
    # (backend.services.prices); off: the built-in table only (no Price List calls, no reads).
    price_list: bool = Field(default=False, alias="TRAINBOT_PRICE_LIST")
    # Stall warning for jobs that do not set stall_alert: seconds without a new log line before
    # the thread is told once (0: off). Failure forensics read the training jobs' CloudWatch log.
    stall_alert_seconds: int = Field(default=0, alias="TRAINBOT_STALL_ALERT_SECONDS", ge=0, le=28 * 24 * 3600)
    # How long before a training plan's end a job running on it, whose max runtime reaches past
    # the point where SageMaker stops the plan's jobs (30 minutes before the end), is warned in
    # its thread (0: off). Two hours: time to save a checkpoint before SageMaker stops it, and
    # for an operator to extend the plan (AWS takes extensions until an hour before the end).
    plan_end_warning_seconds: int = Field(default=7200, alias="TRAINBOT_PLAN_END_WARNING_SECONDS", ge=0, le=28 * 24 * 3600)
    # A running job's card shows its metrics' latest values, from the Describe the monitor's
    # sweep makes anyway: stored on the attempt when they changed, at most once this many
    # seconds (one write each, and a paced card update); 0: not shown while running.
    live_metrics_seconds: int = Field(default=300, alias="TRAINBOT_LIVE_METRICS_SECONDS", ge=0, le=24 * 3600)

    @field_validator("allowed_users", "admin_users", "approval_instance_types", mode="before")
    @classmethod
    def _user_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
        return value

    @field_validator("team_plans", mode="before")
    @classmethod
    def _team_plans(cls, value: Any) -> Any:
        return parse_team_plans(value) if isinstance(value, str) else value

    @field_validator("job_id_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not JOB_ID_PREFIX.match(value):
            raise ValueError("must be up to 12 lowercase letters, digits or dashes, not starting with a dash (e.g. tb-)")
        return value

    @field_validator("instance_limits", mode="before")
    @classmethod
    def _limits(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f'must be JSON like {{"ml.p4d.24xlarge": 4}} ({exc.msg})') from exc
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object like {"ml.p4d.24xlarge": 4}')
        unknown = sorted(set(value) - TRAINING_INSTANCE_TYPES)
        if unknown:
            raise ValueError(f"unknown instance type(s): {', '.join(unknown)}")
        return value

    @field_validator("instance_prices", "team_budgets", "user_teams", mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        # JSON ({"nlp": 500}) or the shorter ``nlp=500,vision=200`` a template parameter takes.
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return {}
            if text.startswith("{"):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f'must be JSON like {{"nlp": 500}} or nlp=500,vision=200 ({exc.msg})') from exc
            pairs = [part.split("=", 1) for part in text.replace(";", ",").split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError('must be JSON like {"nlp": 500} or nlp=500,vision=200')
            return {k.strip(): v.strip() for k, v in pairs}
        return value

    @field_validator("instance_prices", "team_budgets")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        if any(amount < 0 for amount in value.values()):
            raise ValueError("amounts must not be negative")
        return value

    @field_validator("instance_prices", "approval_instance_types")
    @classmethod
    def _known_types(cls, value: Any) -> Any:
        # A typo here would silently price nothing or hold nothing: a guard must fail loudly.
        unknown = sorted(set(value) - TRAINING_INSTANCE_TYPES)
        if unknown:
            raise ValueError(f"unknown instance type(s): {', '.join(unknown)}")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        # slack_sdk joins method names onto base_url, which therefore needs its trailing slash.
        return value if value.endswith("/") else value + "/"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``); raise
        :class:`ConfigError` naming every variable that is missing or wrong."""
        source = dict(os.environ if environ is None else environ)
        names = {f.alias for f in cls.model_fields.values() if f.alias}
        values: dict[str, Any] = {k: v for k, v in source.items() if k in names and v != ""}
        # Overrides (flags) beat the environment, whether named by field or by variable.
        for key, value in overrides.items():
            field = cls.model_fields.get(key)
            values[field.alias if field is not None and field.alias else key] = value
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else "?"
                alias = cls.model_fields[name].alias if name in cls.model_fields else name
                problems.append(f"{alias}: {error['msg']}")
            raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc

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
