"""Record which AWS calls each Lambda handler makes, in representative scenarios, so the IAM
policies in template.yaml can be compared with what the code really does.

Every botocore API call is seen (``BaseClient._make_api_call`` is wrapped) and attributed to
the template function whose handler is running on that thread: each handler named in the
template is replaced, for the recording, by a wrapper that marks the thread. Calls the test
itself makes (creating tables, seeding jobs) are attributed to no function and ignored.

Scenarios:

- launcher and monitor, through tests/harness.py's ``Stack`` (moto, the SageMaker stand-in),
  each first invoked once from a cold start wired from the environment exactly as in AWS
  (Slack credentials from the Secrets Manager secret, read on the first post: a job with a
  thread is launched and ended by those cold starts), with a team budget (the monitor counts
  billed time): a job whose end's reply Slack took but whose answer was lost (the next
  delivery reads the thread), a job that completes (with tags), one
  whose run fails for capacity and two competing for a quota of one (both retried, the type
  held), one that fails its algorithm past its budget (the monitor reads its log's tail from
  the CloudWatch Logs the stand-in wrote), one stopped while running whose stop
  SageMaker missed (the sweep resends it), and one stopped while the launcher created it;
- the bot, signed requests through its handler with lazy listeners re-entering it through the
  Lambda Invoke stand-in: submit, status, list, a small sweep and its redelivery after a
  half-finished registration, a large sweep confirmed and one cancelled, stop of a running
  job, stop of a queued job (an ending the bot announces itself), retry, the submit modal, and
  stats, whose chart the chart function (cold-started through the Lambda Invoke stand-in) draws
  and uploads in the summary's thread.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client
import pytest

from infra.template import load_template

_current = threading.local()


def function_handlers(template: dict[str, Any] | None = None) -> dict[str, str]:
    """``{logical id: dotted handler}`` for every function the template declares."""
    template = template or load_template()
    return {
        logical_id: resource["Properties"]["Handler"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


class CallRecorder:
    """Calls per function: ``{logical id: {(service, operation, with_tags)}}``."""

    def __init__(self) -> None:
        self.calls: dict[str, set[tuple[str, str, bool]]] = defaultdict(set)
        self.slack_methods: set[str] = set()  # Slack Web API methods any function called
        self.missing_scope: list[str] = []  # methods the Slack stand-in refused for a scope
        self._lock = threading.Lock()

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        function = getattr(_current, "function", None)
        if function is None:
            return
        with self._lock:
            for each in _authorized_as(service, operation, params):
                self.calls[function].add((service, each, bool(params.get("Tags"))))

    @contextmanager
    def installed(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[CallRecorder]:
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def _make_api_call(client, operation_name, api_params):
            recorder.record(client.meta.service_model.service_name, operation_name, api_params)
            return original(client, operation_name, api_params)

        monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", _make_api_call)
        for logical_id, dotted in function_handlers().items():
            module_name, _, attribute = dotted.rpartition(".")
            module = importlib.import_module(module_name)
            monkeypatch.setattr(module, attribute, _attributed(logical_id, getattr(module, attribute)))
        yield self


@contextmanager
def unattributed() -> Iterator[None]:
    """Calls made here, on a handler's thread, stand for someone else (a user's action the
    scenario injects): they are not the handler's."""
    previous = getattr(_current, "function", None)
    _current.function = None
    try:
        yield
    finally:
        _current.function = previous


def _attributed(logical_id: str, handler: Callable[..., Any]) -> Callable[..., Any]:
    def handler_as_function(event: Any, context: Any) -> Any:
        previous = getattr(_current, "function", None)
        _current.function = logical_id
        try:
            return handler(event, context)
        finally:
            _current.function = previous

    handler_as_function.__wrapped__ = handler  # type: ignore[attr-defined]
    return handler_as_function


# --- from API calls to IAM actions ---------------------------------------------------------------

# DynamoDB's transactions have no IAM action of their own: each item is authorized as the
# single-item operation it is (a TransactWriteItems of two Updates needs dynamodb:UpdateItem).
_TRANSACT_ITEMS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def _authorized_as(service: str, operation: str, params: dict[str, Any]) -> set[str]:
    """The operations IAM checks for one call: the call's own, or a transaction's items'."""
    if service == "dynamodb" and operation in ("TransactWriteItems", "TransactGetItems"):
        return {_TRANSACT_ITEMS[kind] for item in params.get("TransactItems", []) for kind in item}
    return {operation}


# Operations whose IAM action is not named like the operation.
_ACTION_NAMES = {("lambda", "Invoke"): "lambda:InvokeFunction"}


def iam_actions(calls: set[tuple[str, str, bool]]) -> set[str]:
    """The IAM actions the calls need, including the implied ones: CreateTrainingJob passes
    the job's role (iam:PassRole), and tags it when it carries tags (sagemaker:AddTags)."""
    actions: set[str] = set()
    for service, operation, with_tags in calls:
        actions.add(_ACTION_NAMES.get((service, operation), f"{service}:{operation}"))
        if (service, operation) == ("sagemaker", "CreateTrainingJob"):
            actions.add("iam:PassRole")
            if with_tags:
                actions.add("sagemaker:AddTags")
    return actions


# --- scenarios -----------------------------------------------------------------------------------

SECRET_NAME = "trainbot-recording/slack"


def _create_slack_secret() -> str:
    import boto3

    from tests.bot_fixtures import SECRET, TOKEN

    client = boto3.client("secretsmanager", region_name="us-east-1")
    try:
        return client.create_secret(Name=SECRET_NAME, SecretString=json.dumps({"signing_secret": SECRET, "bot_token": TOKEN}))["ARN"]
    except client.exceptions.ResourceExistsException:
        return client.describe_secret(SecretId=SECRET_NAME)["ARN"]


def _forget_cached_secrets() -> None:
    """A cold start: the bot keeps the secret it read per process, Lambda per sandbox."""
    from backend.adapters.slack.secrets import clear_cached_secrets

    clear_cached_secrets()


def record_backend(recorder: CallRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    """The launcher's and monitor's calls (inside an active ``mock_aws``)."""
    from backend.domain.model import SlackThread
    from backend.entrypoints import runtime
    from infra.local.standins.pricing import PriceListStandIn
    from infra.local.standins.sagemaker import ALGORITHM_ERROR, CAPACITY_ERROR, HP_OUTCOME, HP_OUTCOME_ATTEMPTS, THROTTLING
    from infra.local.standins.slack import SlackStandIn
    from tests.bot_fixtures import TEAM
    from tests.harness import SCHEDULED, Stack, job_request

    _create_slack_secret()
    price_list = PriceListStandIn()
    monkeypatch.setenv("AWS_ENDPOINT_URL_PRICING", price_list.start())
    with SlackStandIn(team_id=TEAM, bot_user_id="U0BOT") as slack:
        # With a budget, the monitor counts each ended attempt's billed time (one TransactWriteItems).
        env = {"SLACK_SECRET_ID": SECRET_NAME, "SLACK_API_URL": slack.api_url, "TRAINBOT_JOB_ID_PREFIX": "tb-", "TRAINBOT_PRICE_LIST": "on",
               "TRAINBOT_TEAM_BUDGETS": "*=1000"}
        holder: dict[str, Any] = {}
        stack = Stack(env=env, duration=120.0, startup=20.0, capacity={"ml.m5.large": 1}, sagemaker_client=lambda client: _StopDuringCreate(client, holder),
                      logs=True)
        holder["stack"] = stack
        try:
            # Cold starts, wired from the environment as in AWS (secret, clients, notifiers).
            for name, value in {
                **env,
                "JOBS_TABLE_NAME": stack.settings.jobs_table_name,
                "NOTIFY_TOPIC_ARN": stack.topic,
            }.items():
                monkeypatch.setenv(name, value)
            # A job with a thread: the cold-started launcher announces its launch and the monitor its
            # end, so each reads the secret (their Slack client is made on its first post).
            announced = stack.submit("announced", slack=SlackThread(channel_id="C0TRAIN"))
            for handler in (stack.launcher_handler, stack.monitor_handler):
                _forget_cached_secrets()
                runtime.install(None)
                handler(SCHEDULED, stack.context)
                stack.clock.advance(200.0)
            assert stack.store.get(announced.job_id).status.value == "Completed"
            runtime.install(stack.container)
            # A thread reply Slack took but whose answer was lost: a later delivery looks for it
            # in the thread before posting it again (conversations.replies: the history scopes).
            told = stack.submit("told-once", slack=SlackThread(channel_id="C0TRAIN"))
            slack.lose_next_answer("chat.postMessage", match=lambda params: bool(params.get("thread_ts")))
            stack.run_until_settled([told.job_id], seconds=60.0)
            stack.clock.advance(3600.0)  # past the failed round's backoff
            stack.sweep()
            told = stack.store.get(told.job_id)
            assert len(slack.thread("C0TRAIN", told.slack.thread_ts)) == 2 and told.delivered["slack"] == told.last_seq
            # Kicked by a submission (start on submit): it consumes the kick record first.
            stack.launcher_handler({"trainbot": "kick"}, stack.context)

            tagged = type(job_request()).model_validate({**job_request().model_dump(exclude_none=True), "Tags": [{"Key": "team", "Value": "nlp"}]})
            jobs = [
                stack.submit("happy", job_args=tagged),
                stack.submit("run-capacity", hp={HP_OUTCOME: CAPACITY_ERROR, HP_OUTCOME_ATTEMPTS: "1"}),
                stack.submit("algorithm", hp={HP_OUTCOME: ALGORITHM_ERROR}, retry_budget=0),
            ]
            # Two jobs for an instance type with a quota of one: the second is refused for quota
            # (ResourceLimitExceeded), held and retried when the first is done.
            jobs += [stack.submit(f"quota-{n}", hp={"instance": "ml.m5.large"}) for n in (1, 2)]
            settled = stack.run_until_settled([job.job_id for job in jobs], seconds=60.0)
            assert [job.status.value for job in settled] == ["Completed", "Completed", "Failed", "Completed", "Completed"]
            assert any(attempt.failure_class == "quota" for job in settled for attempt in job.attempts)

            # A job on a training plan (reserved capacity): the launcher lists the plans (once a
            # minute) and describes one the list lacks before refusing its job.
            now = stack.clock()
            stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 1, now, now + 86400)
            on_plan = stack.submit("on-plan", job_args=job_request(instance="ml.p5.48xlarge"), plan="p5-dec")
            unknown = stack.submit("no-plan", plan="gone")
            settled = stack.run_until_settled([on_plan.job_id, unknown.job_id], seconds=60.0)
            assert [job.status.value for job in settled] == ["Completed", "Failed"]

            # Stopped while running: the bot's stop (not recorded here) leaves it Stopping; the
            # monitor's events and sweep finish it (and resend the stop if SageMaker missed it).
            running = stack.submit("stopped", hp={"trainbot_standin_duration": "3600"})
            stack.tick(60.0)
            stack.tick(60.0)
            # SageMaker misses the user's stop (throttled past boto3's retries): the sweep resends it.
            stack.sagemaker.faults.script_fault("StopTrainingJob", THROTTLING, times=5)
            stack.jobs.stop(running.job_id, _actor(running))
            stack.tick(60.0, sweep=True)
            stack.run_until_settled([running.job_id], seconds=60.0)

            # Stopped by its user while the launcher was creating it: the launcher stops the orphan.
            orphan = stack.submit("orphan")
            stack.tick(60.0, sweep=True)
            assert stack.store.get(orphan.job_id).status.value == "Stopped"
            recorder.slack_methods |= {call.method for call in slack.calls}
            recorder.missing_scope += _refused_for_scope(slack)
        finally:
            stack.close()
            price_list.stop()


class _StopDuringCreate:
    """A SageMaker client through which the user stops the job named ``orphan…`` while the
    launcher's CreateTrainingJob for it is in flight."""

    def __init__(self, client: Any, holder: dict[str, Any]) -> None:
        self._client, self._holder = client, holder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def create_training_job(self, **request: Any) -> Any:
        answer = self._client.create_training_job(**request)
        if request["TrainingJobName"].startswith("tb-orphan-"):
            stack = self._holder["stack"]
            job_id = request["TrainingJobName"].rsplit("-a", 1)[0]
            with unattributed():
                stack.jobs.stop(job_id, _actor(stack.store.get(job_id)))
        return answer


def _actor(job: Any) -> Any:
    from backend.services.jobs import Actor

    return Actor(team_id=job.owner.team_id, user_id=job.owner.user_id)


def record_bot(recorder: CallRecorder, monkeypatch: pytest.MonkeyPatch, jobs_table: str, topic_arn: str) -> None:
    """The bot's calls (inside an active ``mock_aws``; the table and topic exist)."""
    import boto3

    import bot.handler
    from backend.bootstrap import build
    from backend.config import Settings
    from backend.domain.charts import ChartRequest
    from backend.entrypoints import runtime
    from backend.services.submit import sweep_id_for
    from infra.local.standins.lambda_invoke import LambdaStandIn, lambda_context
    from infra.local.standins.sagemaker import SageMakerStandIn
    from infra.local.standins.slack import SlackStandIn
    from infra.local.standins.slack_signing import block_actions_body
    from tests.bot_fixtures import CHANNEL, FUNCTION, GOOD_SUBMIT, TEAM, USER, BotDriver, template_handler

    secret_id = _create_slack_secret()
    with SlackStandIn(team_id=TEAM, bot_user_id="U0BOT") as slack, LambdaStandIn() as lam:
        sagemaker = SageMakerStandIn(default_duration_seconds=3600.0, startup_seconds=1.0)
        sagemaker.start()
        try:
            slack.add_channel(CHANNEL, "ml-training")
            env = {
                "JOBS_TABLE_NAME": jobs_table,
                "NOTIFY_TOPIC_ARN": topic_arn,
                "SLACK_SECRET_ID": secret_id,
                "SLACK_API_URL": slack.api_url,
                "SLACK_TEAM_ID": TEAM,
                "TRAINBOT_ALLOWED_USERS": USER,
                "TRAINBOT_JOB_ID_PREFIX": "tb-",
                "TRAINBOT_SWEEP_CONFIRM_SIZE": "4",
                "AWS_ENDPOINT_URL_LAMBDA": lam.url,
                "AWS_ENDPOINT_URL_SAGEMAKER": sagemaker.url,
                "TRAINBOT_LAUNCHER_FUNCTION": "trainbot-launcher",  # start on submit
                "TRAINBOT_CHART_FUNCTION": "trainbot-chart:live",  # `/train stats` asks it for the chart
                "TRAINBOT_PRICE_LIST": "on",  # as deployed: stats price spend with the stored list prices
            }
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            for name in ("SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN"):
                monkeypatch.delenv(name, raising=False)
            _forget_cached_secrets()
            lam.add(FUNCTION, lambda event, context: template_handler()(event, context))
            lam.add("trainbot-launcher", lambda event, context: None)  # the launcher's side, not recorded
            # The chart function, each invocation a cold start wired from the environment (the
            # secret, the table), as a new execution environment is.
            lam.add("trainbot-chart", lambda event, context: _cold_chart(event, context))
            bot.handler.reset()
            driver = BotDriver(slack, lam)

            def click(action_id: str, value: str) -> None:
                url = slack.response_url(CHANNEL, USER, message_ts="1700000000.000100")
                driver.send(block_actions_body(action_id, value, user_id=USER, team_id=TEAM, channel_id=CHANNEL, response_url=url))

            driver.command(GOOD_SUBMIT)
            wired = build(Settings.from_env())  # the launcher's side, not recorded
            (job,) = wired.store.jobs_of_owner(_actor_of(USER, TEAM).owner, limit=5).jobs
            driver.command(f"status {job.job_id}")
            driver.command("list")
            small = GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5")
            driver.command(small, trigger_id="1.2.sweep")
            # A redelivery of a sweep whose first run died half-way: only the missing jobs are written.
            batch_key = {"JobId": {"S": "sweep#" + sweep_id_for("1.2.sweep")}}
            client = boto3.client("dynamodb", region_name="us-east-1")
            client.update_item(TableName=jobs_table, Key=batch_key, UpdateExpression="SET #s = :r",
                               ExpressionAttributeNames={"#s": "State"}, ExpressionAttributeValues={":r": {"S": "registering"}})
            driver.command(small, trigger_id="1.2.sweep")
            for confirm in (True, False):
                large = GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1,2,3").replace("hp.epochs=3", "hp.epochs=1,2")
                answer = json.loads(driver.command(large)["body"])
                button = answer["blocks"][1]["elements"][0] if confirm else answer["blocks"][1]["elements"][1]
                click(button["action_id"], button["value"])
            # Stopping a queued job ends it: an urgent change the bot delivers itself (SNS too).
            queued = next(j for j in wired.store.jobs_of_owner(_actor_of(USER, TEAM).owner, limit=50).jobs if j.sweep_id)
            driver.command(f"stop {queued.job_id}")
            wired.launcher.run_tick()
            assert wired.store.get(job.job_id).status.value == "Launched"
            driver.command(f"stop {job.job_id}")
            click("job_retry", job.job_id)
            driver.command("submit")  # no arguments: the submit modal
            driver.command("stats days=7")  # summary in the channel; the chart function uploads the chart in its thread (files v2)
            assert [call.params.get("thread_ts") for call in slack.calls_to("files.completeUploadExternal")] != [], "no chart was posted"
            # A chart Slack could not take this time: the function gives its claim back (so
            # Lambda's retry draws it) and fails.
            slack.fail_next("files.completeUploadExternal", error="internal_error", count=5)
            retried = ChartRequest(key="recording-retry", scope="mine", days=7, requester=_actor_of(USER, TEAM).owner, channel_id=CHANNEL)
            with pytest.raises(Exception, match="internal_error"):
                _cold_chart(retried.event(), lambda_context("trainbot-chart"))
            recorder.slack_methods |= {call.method for call in slack.calls}
            recorder.missing_scope += _refused_for_scope(slack)
        finally:
            bot.handler.reset()
            runtime.install(None)
            sagemaker.stop()


def _cold_chart(event: Any, context: Any) -> Any:
    """The chart function's handler from a cold start: no cached secret, no wired container."""
    from backend.entrypoints import runtime

    _forget_cached_secrets()
    runtime.install(None)
    return _template_handler("ChartFunction")(event, context)


def _template_handler(logical_id: str) -> Callable[..., Any]:
    """The handler the template names for ``logical_id``, looked up when called: the recorder
    has replaced it with its attributed wrapper."""
    module_name, _, attribute = function_handlers()[logical_id].rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


def _refused_for_scope(slack: Any) -> list[str]:
    """Methods the stand-in answered with missing_scope (it enforces the manifest's scopes)."""
    return [method for method, error in slack.errors if error == "missing_scope"]


def _actor_of(user: str, team: str) -> Any:
    from backend.services.jobs import Actor

    return Actor(team_id=team, user_id=user)
