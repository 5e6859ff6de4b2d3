"""The built functions wired to moto and the local stand-ins as CloudFormation and Lambda would
wire them: used by the artifact test (tests/artifact/conftest.py) and bench/cold_start.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from infra.deploy import artifacts
from infra.deploy.artifacts import Build
from infra.template import load_template
from tests.artifact.emulator import DeployedFunction, function_environment, lambda_environment

STACK_NAME = "trainbot"


@dataclass
class ArtifactStack:
    functions: dict[str, DeployedFunction]
    aws: Any  # MotoServer
    sagemaker: Any  # SageMakerStandIn on a FakeClock
    slack: Any  # SlackStandIn
    lam: Any  # LambdaStandIn
    prices: Any  # PriceListStandIn: the monitor's daily list prices
    table: str
    topic: str

    def client(self, service: str) -> Any:
        url = self.sagemaker.url if service == "sagemaker" else self.aws.url
        return boto3.client(service, region_name="us-east-1", endpoint_url=url,
                            aws_access_key_id="local", aws_secret_access_key="local")


def _physical_name(properties: dict[str, Any], logical_id: str) -> str:
    name = properties.get("FunctionName", logical_id)
    if isinstance(name, dict):
        name = name["Fn::Sub"].replace("${AWS::StackName}", STACK_NAME)
    return name


@contextmanager
def artifact_stack(built: Build, logs: Path) -> Iterator[ArtifactStack]:
    """The stand-ins, and ``built``'s functions wired to them as CloudFormation would wire them."""
    from infra.deploy.validate import transform
    from infra.local.standins.aws import MotoServer
    from infra.local.standins.lambda_invoke import LambdaStandIn
    from infra.local.standins.pricing import PriceListStandIn
    from infra.local.standins.sagemaker import FakeClock, SageMakerStandIn
    from infra.local.standins.slack import SlackStandIn
    from infra.template import create_jobs_table, create_topic
    from tests.bot_fixtures import CHANNEL, SECRET, TEAM, TOKEN

    template = load_template()
    transformed, problems = transform(template)
    if transformed is None:
        raise AssertionError(problems)
    runtime = artifacts.template_runtime()
    python, boto3_dir = artifacts.find_python(), artifacts.runtime_boto3()
    with MotoServer() as aws, SlackStandIn(team_id=TEAM, bot_user_id="U0BOT") as slack, LambdaStandIn() as lam:
        sagemaker = SageMakerStandIn(clock=FakeClock(start=1_790_000_000.0), default_duration_seconds=600.0, startup_seconds=60.0)
        sagemaker.start()
        prices = PriceListStandIn()  # TRAINBOT_PRICE_LIST is on by default: the monitor's sweep reads it
        prices.start()
        slack.add_channel(CHANNEL, "ml-training")
        client = lambda service: boto3.client(service, region_name="us-east-1", endpoint_url=aws.url,  # noqa: E731
                                              aws_access_key_id="local", aws_secret_access_key="local")
        table = f"{STACK_NAME}-JobsTable"
        create_jobs_table(client("dynamodb"), table)
        topic = create_topic(client("sns"), f"{STACK_NAME}-NotifyTopic")
        secret = client("secretsmanager").create_secret(
            Name=f"{STACK_NAME}/slack", SecretString=json.dumps({"signing_secret": SECRET, "bot_token": TOKEN}))["ARN"]
        resources = {"JobsTable": table, "NotifyTopic": topic, "SlackSecret": secret}
        parameters = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
        parameters["TrainingRoleArns"] = "arn:aws:iam::123456789012:role/SageMakerRole"
        endpoints = {
            **aws.endpoint_env(),
            "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker.url,
            "AWS_ENDPOINT_URL_LAMBDA": lam.url,
            "AWS_ENDPOINT_URL_PRICING": prices.url,
            "SLACK_API_URL": slack.api_url,  # not in the template: Slack's public API is the default
        }
        functions = {}
        for logical_id, artifact in built.functions.items():
            properties = transformed["Resources"][logical_id]["Properties"]
            name = _physical_name(template["Resources"][logical_id]["Properties"], logical_id)
            memory = int(properties.get("MemorySize", 128))
            environment = {
                **lambda_environment(name, artifact, memory, runtime),
                **function_environment(transformed, logical_id, resources, parameters),
                **endpoints,
            }
            functions[logical_id] = DeployedFunction(
                logical_id, name, artifact, properties["Handler"], environment, python, boto3_dir, logs,
                timeout_seconds=float(properties.get("Timeout", 3)),
            )
        # Lazy listeners: bolt invokes the bot's own (aliased) ARN asynchronously; `/train stats`
        # invokes the chart function's the same way.
        bot = functions["BotFunction"]
        lam.add(bot.name, lambda event, context: bot.invoke(event))
        chart = functions.get("ChartFunction")
        if chart is not None:
            lam.add(chart.name, lambda event, context: chart.invoke(event))
        try:
            yield ArtifactStack(functions, aws, sagemaker, slack, lam, prices, table, topic)
        finally:
            for function in functions.values():
                function.close()
            sagemaker.stop()
            prices.stop()
