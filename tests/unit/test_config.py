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
    missing = [f.alias for f in Settings.model_fields.values() if f"`{f.alias}`" not in table]
    assert missing == []
