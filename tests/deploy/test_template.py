"""template.yaml as deployed: it passes the offline checks, each function's handler exists, its
environment declares every setting the code reads, and its role allows exactly the AWS calls
its handler made in the recorded scenarios (tests/deploy/recording.py)."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest

from backend.config import Settings
from infra.deploy.validate import function_environment, function_permissions
from infra.template import load_template
from tests.deploy.recording import function_handlers, iam_actions

FUNCTIONS = ["BotFunction", "LauncherFunction", "MonitorFunction", "ChartFunction"]
DLQ_ARN = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
TRAINING_JOBS = {"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:training-job/${JobIdPrefix}*"}
TABLE_AND_INDEXES = [{"Fn::GetAtt": ["JobsTable", "Arn"]}, {"Fn::Sub": "${JobsTable.Arn}/index/*"}]
# Settings a function may leave to their defaults, and why.
DEFAULTED = {
    "SLACK_SIGNING_SECRET": "read from the SLACK_SECRET_ID secret",
    "SLACK_BOT_TOKEN": "read from the SLACK_SECRET_ID secret",
    "SLACK_API_URL": "Slack's public Web API is the default",
    "AWS_REGION": "set by Lambda itself",
    "TRAINBOT_LAUNCHER_FUNCTION": "only the bot starts the launcher on submit; the others register nothing",
    "TRAINBOT_CHART_FUNCTION": "only the bot asks for the stats chart",
}
# Variables a library reads, not Trainbot's settings: matplotlib's, in the chart function only.
LIBRARY_VARIABLES = {"ChartFunction": {"MPLBACKEND", "MPLCONFIGDIR"}}
POWERTOOLS = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL"}


def test_the_template_passes_every_offline_check(validation):
    assert validation.ok, "\n".join(map(str, validation.problems))


def test_the_template_declares_exactly_the_four_functions_and_their_handlers_are_importable_callables():
    handlers = function_handlers()
    assert sorted(handlers) == sorted(FUNCTIONS)
    for dotted in handlers.values():
        module, _, name = dotted.rpartition(".")
        handler = getattr(importlib.import_module(module), name)
        assert callable(handler), dotted


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_setting_the_code_reads_is_declared_in_the_functions_environment(transformed, function):
    declared = set(function_environment(transformed, function))
    read = set(Settings.variables())
    assert read - set(DEFAULTED) - declared == set(), "settings the function would silently default"
    assert declared >= POWERTOOLS
    assert declared - read - POWERTOOLS - LIBRARY_VARIABLES.get(function, set()) == set(), "variables no code reads"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_environment_with_default_parameters_passes_the_cold_start_validation(transformed, function):
    """What a deploy with every parameter at its default would give the function: Settings
    accepts it (a wrong default would fail every cold start)."""
    template = load_template()
    parameters = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    parameters["TrainingRoleArns"] = "arn:aws:iam::123456789012:role/SageMakerRole"
    env = {name: _resolve(value, parameters) for name, value in function_environment(transformed, function).items()}
    settings = Settings.from_env(env)
    assert settings.job_id_prefix == "tb-" and settings.slack_secret_id == "<SlackSecret>"
    assert env["JOBS_TABLE_NAME"] == "<JobsTable>" and env["NOTIFY_TOPIC_ARN"] == "<NotifyTopic>"


def _resolve(value: Any, parameters: dict[str, str]) -> str:
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return parameters.get(value["Ref"], f"<{value['Ref']}>")
    if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: parameters.get(m[1], f"<{m[1]}>"), value["Fn::Sub"])
    raise AssertionError(f"unexpected intrinsic in an environment variable: {value}")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_role_allows_exactly_the_calls_its_handler_made(transformed, recorded_calls, function):
    allowed = function_permissions(transformed, function)
    # The one permission no handler code calls: Lambda's own delivery of failed async events.
    assert allowed.pop("sqs:SendMessage") == [DLQ_ARN]
    assert set(allowed) == iam_actions(recorded_calls[function])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_permission_is_scoped_to_this_stacks_resources(transformed, function):
    allowed = function_permissions(transformed, function)
    expected_resources = {
        "dynamodb": TABLE_AND_INDEXES,
        "sagemaker": [TRAINING_JOBS],
        "sns": [{"Ref": "NotifyTopic"}],
        "secretsmanager": [{"Ref": "SlackSecret"}],
        "iam": [{"Ref": "TrainingRoleArns"}],
        # The Price List API has no resources to name (AWS requires "*"); it reads no data of ours.
        "pricing": ["*"],
        # Failure forensics and stall warnings: SageMaker's training log group, nothing else.
        "logs": [
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/sagemaker/TrainingJobs"},
            {"Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/sagemaker/TrainingJobs:log-stream:*"},
        ],
        # The bot invokes itself (lazy listeners; bolt re-invokes the ARN it was invoked by, the
        # `live` alias), the launcher's `live` alias (start on submit) and the chart function's
        # (`/train stats`' chart).
        "lambda": [
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-bot"},
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-bot:live"},
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-launcher:live"},
            {"Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-chart:live"},
        ],
    }
    # Training plans are the account's (bought outside the stack): read only. ListTrainingPlans
    # has no resource type (Service Authorization Reference): "*" is all a policy can name.
    expected_for_action = {
        "sagemaker:DescribeTrainingPlan": [{"Fn::Sub": "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:training-plan/*"}],
        "sagemaker:ListTrainingPlans": ["*"],
        # The monitor's orphan reaper: ListTrainingJobs has no resource type either; what it
        # may stop is still only this stack's training jobs (StopTrainingJob, above).
        "sagemaker:ListTrainingJobs": ["*"],
    }
    for action, resources in allowed.items():
        if action == "sqs:SendMessage":
            continue
        assert resources == expected_for_action.get(action, expected_resources[action.split(":")[0]]), action


def test_only_the_bot_may_invoke_itself_and_it_is_the_function_named_in_that_permission(transformed):
    assert "lambda:InvokeFunction" in function_permissions(transformed, "BotFunction")
    assert transformed["Resources"]["BotFunction"]["Properties"]["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-bot"}
    for function in ("LauncherFunction", "MonitorFunction", "ChartFunction"):
        assert "lambda:InvokeFunction" not in function_permissions(transformed, function)


def test_the_chart_function_is_asked_asynchronously_by_the_bot_and_its_failures_reach_the_dead_letter_queue(transformed):
    resources = transformed["Resources"]
    bot_env = function_environment(transformed, "BotFunction")
    assert bot_env["TRAINBOT_CHART_FUNCTION"] == {"Fn::Sub": "${AWS::StackName}-chart:live"}
    chart = resources["ChartFunction"]["Properties"]
    assert chart["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-chart"} and chart["Runtime"] == "python3.13"
    assert function_environment(transformed, "ChartFunction")["MPLBACKEND"] == "Agg"
    config = next(r["Properties"] for n, r in resources.items() if n.startswith("ChartFunction") and r["Type"] == "AWS::Lambda::EventInvokeConfig")
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == DLQ_ARN
    # No schedule, no rule, no URL: only the bot's Invoke starts it.
    assert not [n for n, r in resources.items() if n.startswith("ChartFunction") and r["Type"] in ("AWS::Events::Rule", "AWS::Lambda::Url")]


def test_the_monitor_rule_sees_only_this_stacks_training_jobs(transformed):
    rule = transformed["Resources"]["MonitorFunctionTrainingJobStateChange"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {"TrainingJobName": [{"prefix": {"Ref": "JobIdPrefix"}}]},
    }


def test_the_launcher_runs_every_minute_and_the_sweep_every_five_minutes(transformed):
    # One launcher at a time is optional (LauncherReservedConcurrency): see test_template_realism.
    resources = transformed["Resources"]
    assert resources["LauncherFunctionEveryMinute"]["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert resources["MonitorFunctionSweep"]["Properties"]["ScheduleExpression"] == "rate(5 minutes)"


def test_no_launcher_run_outlives_its_claim_on_an_attempt():
    # A retry of a job stopped inside its launch waits for the claim to expire (JobService.retry):
    # sound only if the run that claimed the attempt is dead by then, create and all.
    from backend.domain.terms import LAUNCH_LEASE

    timeout = load_template()["Resources"]["LauncherFunction"]["Properties"]["Timeout"]
    assert timeout < LAUNCH_LEASE.total_seconds()


def test_the_job_id_prefix_parameter_admits_exactly_what_the_settings_admit():
    from backend.domain.model import JOB_ID_PREFIX

    pattern = re.compile(load_template()["Parameters"]["JobIdPrefix"]["AllowedPattern"])
    for candidate in ["tb-", "a", "team-ml-2024", "", "-tb", "TB", "thirteen-char", "tb_"]:
        in_template = bool(pattern.match(candidate))
        # The template also refuses an empty prefix: unscoped IAM is not an option in AWS.
        assert in_template == (bool(JOB_ID_PREFIX.match(candidate)) and candidate != ""), candidate


def test_the_alarms_and_dashboard_read_the_namespace_and_service_the_handlers_emit(transformed):
    from backend.entrypoints.runtime import metrics

    env = function_environment(transformed, "MonitorFunction")
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == metrics.namespace
    assert env["POWERTOOLS_SERVICE_NAME"] == metrics.service
    alarm = transformed["Resources"]["StuckRetryingAlarm"]["Properties"]
    assert alarm["Namespace"] == metrics.namespace
    assert alarm["Dimensions"] == [{"Name": "service", "Value": metrics.service}]


def test_the_jobs_table_is_protected_and_expires_only_what_carries_expires_at():
    table = load_template()["Resources"]["JobsTable"]
    assert table["DeletionPolicy"] == "Retain" and table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["Properties"]["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "ExpiresAt", "Enabled": True}


def test_every_trainbot_metric_on_the_dashboard_is_one_a_handler_emits():
    from pathlib import Path

    body = load_template()["Resources"]
    dashboard = next(r for r in body.values() if r["Type"] == "AWS::CloudWatch::Dashboard")
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"][0]
    named = set(re.findall(r'\["(?:Trainbot|\.)", "(\w+)"', text))
    searched = set(re.findall(r"SEARCH\('\{Trainbot,service\} (\w+)'", text))
    handlers = "".join(p.read_text() for p in (Path(__file__).resolve().parents[2] / "backend" / "entrypoints").glob("*.py"))
    assert named and searched
    assert sorted(n for n in named if f'"{n}"' not in handlers) == []
    assert sorted(p for p in searched if f'name=f"{p}_' not in handlers) == []
