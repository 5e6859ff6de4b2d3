"""Trainbot at team scale on one machine, for the Slack tests and ``bench/slack.py``: the
template's handlers (the bot's, reached by signed Slack requests whose lazy listeners re-enter
it through the Lambda Invoke stand-in; the launcher's and the monitor's, driven as AWS drives
them), moto for DynamoDB and SNS, the SageMaker stand-in and the rate-limiting Slack stand-in,
all on one simulated clock (tests/harness.py's ``Stack``). It counts every DynamoDB write and
read the wired store makes. Build it inside an active ``mock_aws()``."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from infra.local.standins.lambda_invoke import LambdaStandIn
from infra.local.standins.slack import RateLimits, SlackStandIn
from tests.bot_fixtures import CHANNEL, FUNCTION, SECRET, TEAM, TOKEN, USER, BotDriver, template_handler
from tests.harness import Stack

WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
READS = {"GetItem"}


class DynamoCounter:
    """Counts the DynamoDB items a boto3 client writes and reads, by operation (a batch
    counts its items; a query what it scanned)."""

    def __init__(self, client: Any) -> None:
        self.writes: Counter[str] = Counter()
        self.reads: Counter[str] = Counter()
        # Writes per function run, not per job, counted apart: the stats rollup's records
        # (backend.services.rollup: per ten minutes of ends and per hour) and the monitor's
        # cursors (its sweep's place and the orphan reaper's, per sweep).
        self.run_writes = 0
        client.meta.events.register("provide-client-params.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        name = model.name
        key = (params.get("Key") or params.get("Item") or {}).get("JobId", {}).get("S", "")
        if name in WRITES and key.startswith(("stats#", "cursor#")):
            self.run_writes += 1
        elif name in WRITES:
            self.writes[name] += 1
        elif name == "BatchWriteItem":
            self.writes[name] += sum(len(v) for v in params.get("RequestItems", {}).values())
        elif name == "TransactWriteItems":
            self.writes[name] += len(params.get("TransactItems", []))
        elif name in READS:
            self.reads[name] += 1

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        name = model.name
        if name == "BatchGetItem":
            self.reads[name] += sum(len(v) for v in parsed.get("Responses", {}).values())
        elif name in ("Query", "Scan"):
            self.reads[name] += int(parsed.get("ScannedCount", 0))

    @property
    def total_writes(self) -> int:
        return sum(self.writes.values())

    @property
    def total_reads(self) -> int:
        return sum(self.reads.values())


class SlackWorld:
    """Use as a context manager inside ``mock_aws()``."""

    def __init__(self, *, capacity: int = 4000, duration: float = 120.0, startup: float = 20.0, env: dict[str, str] | None = None,
                 limits: RateLimits | None = None) -> None:
        self._holder: dict[str, Stack] = {}
        self.slack = SlackStandIn(team_id=TEAM, bot_user_id="U0BOT", limits=limits,
                                  limit_clock=lambda: self._holder["stack"].clock() if "stack" in self._holder else 0.0)
        self.slack.start()
        self.slack.add_channel(CHANNEL, "ml-training")
        self.lam = LambdaStandIn()
        self.lam.__enter__()
        self._env_before = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL_LAMBDA",)}
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.lam.url
        self.stack = Stack(
            capacity={"ml.g5.xlarge": capacity}, duration=duration, startup=startup,
            env={
                "SLACK_BOT_TOKEN": TOKEN,
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_API_URL": self.slack.api_url,
                "SLACK_TEAM_ID": TEAM,
                "TRAINBOT_ALLOWED_USERS": USER,
                "TRAINBOT_SWEEP_CONFIRM_SIZE": "5000",
                "TRAINBOT_SWEEP_MAX_SIZE": "5000",
                **(env or {}),
            },
        )
        self._holder["stack"] = self.stack
        self.counter = DynamoCounter(self.stack.store._client)
        self._install_bot()
        self.lam.add(FUNCTION, lambda event, context: template_handler()(event, context))
        self.bot = BotDriver(self.slack, self.lam)

    def _install_bot(self) -> None:
        """The bot's template handler, wired (as a cold start would be) with the same
        container as the launcher and monitor, so all three share the simulated clock."""
        import bot.handler
        from backend.adapters.slack.secrets import slack_credentials

        credentials = slack_credentials(self.stack.container.settings)
        bot.handler._wired = bot.handler.wire(self.stack.container, credentials)

    def __enter__(self) -> SlackWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        import bot.handler

        bot.handler.reset()
        self.stack.close()
        self.lam.__exit__(None, None, None)
        self.slack.stop()
        for key, value in self._env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # --- driving --------------------------------------------------------------------------

    def command(self, text: str, *, timeout: float = 600.0) -> dict:
        """A signed ``/train`` command through the bot's handler; waits for its lazy listener
        (registering a 2,000-job sweep in moto takes a while)."""
        response = self.bot.command(text, settle=False)
        self.bot.settle(timeout)
        return response

    def job_ids(self) -> list[str]:
        """Every job in the table (the tests' and benchmark's own view: a scan)."""
        ids: list[str] = []
        kwargs: dict[str, Any] = {"TableName": self.stack.settings.jobs_table_name, "ProjectionExpression": "JobId, RecordType"}
        while True:
            page = self.stack.dynamodb.scan(**kwargs)
            ids += [i["JobId"]["S"] for i in page["Items"] if i.get("RecordType", {}).get("S") == "job"]
            if "LastEvaluatedKey" not in page:
                return ids
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def outbox_size(self) -> int:
        """Jobs with an undelivered change (an index count through the test's own client, so
        the store's counters see only Trainbot's own calls)."""
        answer = self.stack.dynamodb.query(
            TableName=self.stack.settings.jobs_table_name, IndexName="Outbox", Select="COUNT",
            KeyConditionExpression="OutboxKey = :k", ExpressionAttributeValues={":k": {"S": "pending"}},
        )
        return int(answer["Count"])

    def settle(self, job_ids: list[str], *, max_ticks: int = 400, seconds: float = 30.0) -> list:
        """Run the system (launcher every tick, SageMaker's events, the monitor's sweep every
        fourth tick) until every job has ended and the outbox is empty; the jobs, as stored."""
        for tick in range(max_ticks):
            if self.stack.unsettled() == 0 and self.outbox_size() == 0:
                break
            self.stack.tick(seconds, sweep=tick % 4 == 3)
        else:
            raise AssertionError(f"not settled after {max_ticks} ticks: {self.stack.unsettled()} jobs, {self.outbox_size()} in the outbox")
        reads, writes = self.counter.reads.copy(), self.counter.writes.copy()
        jobs = self.stack.store.get_many(job_ids)
        self.counter.reads, self.counter.writes = reads, writes  # the test's own read is not Trainbot's
        return jobs
