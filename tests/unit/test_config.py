"""Settings: defaults, parsing, and loud failures naming the variable."""

import pytest

from backend.config import Settings
from backend.errors import ConfigError


def test_defaults_match_the_configuration_reference():
    settings = Settings.from_env({"JOBS_TABLE_NAME": "jobs"})
    assert settings.retry_base_seconds == 60
    assert settings.retry_max_seconds == 1800
    assert settings.capacity_max_wait_seconds == 24 * 3600
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.is_allowed("U123")


def test_lists_and_limits_are_parsed():
    settings = Settings.from_env(
        {
            "JOBS_TABLE_NAME": "jobs",
            "TRAINBOT_ALLOWED_USERS": "U1, U2",
            "TRAINBOT_ADMIN_USERS": "U9",
            "TRAINBOT_INSTANCE_LIMITS": '{"ml.p4d.24xlarge": 4}',
            "SLACK_API_URL": "http://127.0.0.1:9/api",
        }
    )
    assert settings.is_allowed("U2") and settings.is_allowed("U9") and not settings.is_allowed("U3")
    assert settings.is_admin("U9") and not settings.is_admin("U1")
    assert settings.instance_limits == {"ml.p4d.24xlarge": 4}
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "JOBS_TABLE_NAME"),
        ({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_INSTANCE_LIMITS": "{oops"}, "TRAINBOT_INSTANCE_LIMITS"),
        ({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_INSTANCE_LIMITS": '{"ml.nope": 1}'}, "TRAINBOT_INSTANCE_LIMITS"),
        ({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_RETRY_BASE_SECONDS": "-1"}, "TRAINBOT_RETRY_BASE_SECONDS"),
    ],
)
def test_a_wrong_deploy_fails_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    assert variable in str(info.value)


def test_overrides_beat_the_environment_whether_named_by_field_or_variable():
    env = {"JOBS_TABLE_NAME": "from-env", "AWS_REGION": "eu-west-1"}
    assert Settings.from_env(env, jobs_table_name="from-flag").jobs_table_name == "from-flag"
    assert Settings.from_env(env, AWS_REGION="us-west-2").aws_region == "us-west-2"


def test_every_setting_is_documented_in_the_readme_configuration_table():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in Settings.variables() if f"`{name}`" not in table]
    assert missing == []


# What pydantic's lax parsing answered for these when Settings was a pydantic model (2.13):
# the plain Settings must read every value the same and word every refusal the same.
PARSED = [
    ("TRAINBOT_SWEEP_MAX_SIZE", "5.0", 5),
    ("TRAINBOT_SWEEP_MAX_SIZE", " 5 ", 5),
    ("TRAINBOT_SWEEP_MAX_SIZE", "1_000", 1000),
    ("TRAINBOT_SWEEP_MAX_SIZE", "+5", 5),
    ("TRAINBOT_PRICE_LIST", "TRUE", True),
    ("TRAINBOT_PRICE_LIST", "On", True),
    ("TRAINBOT_PRICE_LIST", "off", False),
    ("TRAINBOT_PRICE_LIST", "0", False),
    ("TRAINBOT_RETRY_BASE_SECONDS", " 60 ", 60.0),
    ("TRAINBOT_RETRY_BASE_SECONDS", "1e2", 100.0),
    ("TRAINBOT_RETRY_BASE_SECONDS", "1_0", 10.0),
    ("TRAINBOT_INSTANCE_LIMITS", '{"ml.g5.xlarge": "4"}', {"ml.g5.xlarge": 4}),
    ("TRAINBOT_INSTANCE_LIMITS", '{"ml.g5.xlarge": 4.0}', {"ml.g5.xlarge": 4}),
    ("TRAINBOT_INSTANCE_LIMITS", '{"ml.g5.xlarge": true}', {"ml.g5.xlarge": 1}),
    ("TRAINBOT_INSTANCE_LIMITS", " ", {}),
    ("TRAINBOT_USER_TEAMS", "U1=nlp, U2 = cv", {"U1": "nlp", "U2": "cv"}),
    ("TRAINBOT_TEAM_BUDGETS", '{"nlp": "5"}', {"nlp": 5.0}),
    ("TRAINBOT_TEAM_BUDGETS", "nlp=500;*=50", {"nlp": 500.0, "*": 50.0}),
    ("TRAINBOT_INSTANCE_PRICES", "ml.g5.xlarge=1.5", {"ml.g5.xlarge": 1.5}),
    ("TRAINBOT_ALLOWED_USERS", " ; ", frozenset()),
    ("TRAINBOT_APPROVAL_INSTANCE_TYPES", "ml.p5.48xlarge; ml.g5.xlarge", frozenset({"ml.p5.48xlarge", "ml.g5.xlarge"})),
    ("TRAINBOT_TEAM_PLANS", "nlp=p5-dec, cv=p4-q1", {"nlp": "p5-dec", "cv": "p4-q1"}),
    ("TRAINBOT_BUDGET_MODE", "approve", "approve"),
    ("TRAINBOT_JOB_ID_PREFIX", "tb-", "tb-"),
    ("SLACK_API_URL", "http://127.0.0.1:9/api", "http://127.0.0.1:9/api/"),
]

REFUSED = [
    ("TRAINBOT_SWEEP_MAX_SIZE", "5.5", "Input should be a valid integer, unable to parse string as an integer"),
    ("TRAINBOT_SWEEP_MAX_SIZE", "0", "Input should be greater than or equal to 1"),
    ("TRAINBOT_PRICE_LIST", "maybe", "Input should be a valid boolean, unable to interpret input"),
    ("TRAINBOT_PRICE_LIST", " yes ", "Input should be a valid boolean, unable to interpret input"),
    ("TRAINBOT_RETRY_BASE_SECONDS", "nan", "Input should be greater than 0"),
    ("TRAINBOT_RETRY_BASE_SECONDS", "x", "Input should be a valid number, unable to parse string as a number"),
    ("TRAINBOT_INSTANCE_LIMITS", '{"ml.g5.xlarge": 4.5}', "Input should be a valid integer, got a number with a fractional part"),
    ("TRAINBOT_INSTANCE_LIMITS", "[1]", 'Value error, must be a JSON object like {"ml.p4d.24xlarge": 4}'),
    ("TRAINBOT_USER_TEAMS", '{"U1": 5}', "Input should be a valid string"),
    ("TRAINBOT_USER_TEAMS", "U1", 'Value error, must be JSON like {"nlp": 500} or nlp=500,vision=200'),
    ("TRAINBOT_TEAM_BUDGETS", "nlp=-1", "Value error, amounts must not be negative"),
    ("TRAINBOT_TEAM_BUDGETS", "nlp=x", "Input should be a valid number, unable to parse string as a number"),
    ("TRAINBOT_BUDGET_MODE", "Refuse", "Input should be 'refuse' or 'approve'"),
    ("JOBS_TABLE_NAME", "ab", "String should have at least 3 characters"),
    ("TRAINBOT_JOB_ID_PREFIX", "TB-", "Value error, must be up to 12 lowercase letters, digits or dashes, not starting with a dash (e.g. tb-)"),
    ("TRAINBOT_TEAM_PLANS", "nlp", "Value error, 'nlp' is not team=plan-name (e.g. nlp=p5-dec)"),
    ("TRAINBOT_APPROVAL_INSTANCE_TYPES", "ml.x, ml.g5.xlarge", "Value error, unknown instance type(s): ml.x"),
    ("TRAINBOT_RETENTION_DAYS", "99999", "Input should be less than or equal to 36500"),
]


def _field(variable: str) -> str:
    return next(name for name, v in Settings.VARIABLES.items() if v.alias == variable)


@pytest.mark.parametrize(("variable", "text", "value"), PARSED, ids=lambda v: str(sorted(v)) if isinstance(v, (set, frozenset)) else str(v))  # a set's order differs per process
def test_a_value_reads_as_pydantic_read_it(variable, text, value):
    read = getattr(Settings.from_env({"JOBS_TABLE_NAME": "jobs", variable: text}), _field(variable))
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize(("variable", "text", "message"), REFUSED, ids=lambda v: str(v))
def test_a_wrong_value_is_refused_in_pydantics_words(variable, text, message):
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", variable: text})
    assert str(info.value) == f"invalid configuration: {variable}: {message}"


def test_every_problem_is_named_at_once_and_a_missing_table_is_required():
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TRAINBOT_RETRY_BASE_SECONDS": "0"})
    assert str(info.value) == "invalid configuration: JOBS_TABLE_NAME: Field required; TRAINBOT_RETRY_BASE_SECONDS: Input should be greater than 0"


def test_overrides_may_be_python_values_and_settings_never_change():
    settings = Settings.from_env({"JOBS_TABLE_NAME": "jobs"}, retry_base_seconds=5, sweep_max_size=3.0, allowed_users=["a"], price_list=1)
    assert (settings.retry_base_seconds, settings.sweep_max_size, settings.allowed_users, settings.price_list) == (5.0, 3, frozenset({"a"}), True)
    with pytest.raises(AttributeError):
        settings.jobs_table_name = "other"  # type: ignore[misc]
    assert settings == Settings(JOBS_TABLE_NAME="jobs", retry_base_seconds=5, sweep_max_size=3, allowed_users=["a"], price_list=True)
    assert Settings(jobs_table_name="jobs").instance_limits is not Settings(jobs_table_name="jobs").instance_limits
