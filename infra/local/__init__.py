"""Local mode: the whole Trainbot on one machine, in one process, on 127.0.0.1 only.

:class:`LocalStack` starts

- the AWS stand-in (moto's server: DynamoDB, SNS …) with the jobs table and topic created from
  `template.yaml`;
- the SageMaker stand-in on the real clock, with short durations, per-instance-type capacity
  and fault injection (``chaos``);
- the Slack stand-in with the Slack-like page (``infra/local/static/``) on it;
- the bot behind a local Function URL (lazy listeners re-enter it through the Lambda Invoke
  stand-in), and the launcher and monitor driven by their template events: schedules seconds
  apart, SageMaker state changes delivered to the monitor as they happen; every function is
  also invokable by name through the Lambda stand-in (the launcher's kick, the stats chart);

and stops all of it, closing every socket, in :meth:`LocalStack.stop`. Every Trainbot setting
goes through the process environment, exactly as on Lambda; :meth:`stop` restores it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from backend.entrypoints.cli.common import CONNECTION_FILE_ENV, connection_file
from infra.local.bot_endpoint import BotEndpoint
from infra.local.functions import FunctionDriver, FunctionSpec, resolve, resolve_handler
from infra.local.page import PageUser, SlackPage, stats_renderer
from infra.local.standins.aws import MotoServer
from infra.local.standins.lambda_invoke import LambdaStandIn
from infra.local.standins.pricing import PriceListStandIn
from infra.local.standins.sagemaker import Faults, SageMakerStandIn
from infra.local.standins.slack import Faults as SlackFaults
from infra.local.standins.slack import SlackStandIn
from infra.template import create_jobs_table, create_topic, load_template

logger = logging.getLogger("trainbot.local")

STACK_NAME = "trainbot-local"
TABLE_NAME = "trainbot-local-jobs"
TOPIC_NAME = "trainbot-local-notify"
REGION = "us-east-1"
TEAM_ID = "T0LOCAL"
CHANNEL_ID = "C0TRAIN"
CHANNEL_NAME = "ml-training"
USERS = [PageUser("U0YOU", "you"), PageUser("U0COLLEAGUE", "colleague"), PageUser("U0ADMIN", "admin")]
SNAPSHOT = "jobs.jsonl"
# The Slack stand-in's workspace (channel, threads, DMs, files), kept with the jobs table: a
# restored job's card and thread are where its Slack ids say they are, as in Slack.
SLACK_SNAPSHOT = "slack.json"

# Instances the account may run at once, per type (the stand-in refuses more with
# ResourceLimitExceeded, which Trainbot retries): small, so capacity retries show.
DEFAULT_CAPACITY = {"ml.p4d.24xlarge": 2, "ml.p5.48xlarge": 1, "ml.g5.12xlarge": 4, "ml.g5.xlarge": 8}


def chaos_faults(level: float) -> Faults:
    """The SageMaker stand-in's fault probabilities for a chaos level in 0..1."""
    level = max(0.0, min(1.0, level))
    return Faults(
        create_limit_exceeded_probability=0.2 * level,
        create_throttle_probability=0.2 * level,
        create_internal_error_probability=0.1 * level,
        lost_create_response_probability=0.1 * level,
        capacity_error_probability=0.3 * level,
        algorithm_error_probability=0.15 * level,
        describe_throttle_probability=0.2 * level,
        duplicate_event_probability=0.3 * level,
        reorder_events=level > 0,
    )


@dataclass
class LocalOptions:
    port: int = 8080  # the page; 0 = any free port
    data_dir: Path | None = None  # persist the jobs table here between runs
    chaos: float = 0.05  # 0 = no random faults, 1 = a lot
    launcher_every: float = 2.0
    monitor_every: float = 5.0
    events_every: float = 0.25
    startup_seconds: float = 2.0
    run_seconds: float = 12.0
    stop_seconds: float = 2.0
    # A training job's progress line (with its metrics' values) every this many seconds, and
    # the monitor stores a running job's changed values at most this often (on AWS: minutes,
    # TRAINBOT_LIVE_METRICS_SECONDS): short, so a 12 s run shows them on its card.
    log_interval_seconds: float = 2.0
    live_metrics_seconds: float = 4.0
    capacity: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 20.0
    seed: int | None = None
    log_transitions: bool = True
    write_connection_file: bool = True
    verbose: bool = False
    # Asynchronous Lambda invocations (lazy listeners, kicks) running at once; more wait in
    # line as Lambda queues them. A burst of 200 submits otherwise runs 200 threads against one
    # GIL and a one-request-at-a-time AWS stand-in, whose answers then outlast boto3's timeouts.
    lambda_concurrency: int = 8
    # Template parameter overrides, as `sam deploy --parameter-overrides` gives them (e.g.
    # {"LauncherReservedConcurrency": "1"} for one launcher at a time). The cost guard's
    # (TeamBudgets, ApprovalInstanceHours, …) reach every function's environment this way:
    # see :func:`cost_guard_parameters` for `trainbot local`'s options.
    parameters: dict[str, str] = field(default_factory=dict)
    out: TextIO = field(default_factory=lambda: sys.stdout)


# The page's users are one team, so a `--budget local=…` is theirs; the page's own user
# ("you") is an admin with the admin user, so the approval DM can be answered in the browser.
LOCAL_TEAM = "local"
LOCAL_USER_TEAMS = ",".join(f"{user.user_id}={LOCAL_TEAM}" for user in USERS)
LOCAL_ADMINS = "U0ADMIN,U0YOU"


def cost_guard_parameters(
    *,
    budgets: list[str] | None = None,
    approve_over: float | None = None,
    approve_types: list[str] | None = None,
    approve_sweeps: int | None = None,
    budget_mode: str | None = None,
) -> dict[str, str]:
    """Template parameters for the cost guard from `trainbot local`'s options: ``budgets`` as
    ``team=hours`` (``*`` for everyone else), approvals above ``approve_over`` instance-hours,
    on ``approve_types``, for sweeps over ``approve_sweeps`` jobs."""
    parameters: dict[str, str] = {}
    if budgets:
        for budget in budgets:
            team, sep, hours = budget.partition("=")
            try:
                ok = bool(sep and team.strip()) and float(hours) >= 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"--budget {budget!r}: expected team=hours, e.g. {LOCAL_TEAM}=5")
        parameters["TeamBudgets"] = ",".join(b.strip() for b in budgets)
    if approve_over is not None:
        parameters["ApprovalInstanceHours"] = f"{approve_over:g}"
    if approve_types:
        parameters["ApprovalInstanceTypes"] = ",".join(approve_types)
    if approve_sweeps is not None:
        parameters["ApprovalSweepSize"] = str(approve_sweeps)
    if budget_mode is not None:
        parameters["BudgetMode"] = budget_mode
    return parameters


class LocalStack:
    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        self.signing_secret = secrets.token_hex(16)
        self.bot_token = "xoxb-local-" + secrets.token_hex(8)
        self.aws = MotoServer()
        self.sagemaker = SageMakerStandIn(
            clock=time.time,
            capacity=self.options.capacity,
            default_duration_seconds=self.options.run_seconds,
            startup_seconds=self.options.startup_seconds,
            stop_seconds=self.options.stop_seconds,
            log_interval_seconds=self.options.log_interval_seconds,
            faults=chaos_faults(self.options.chaos),
            seed=self.options.seed,
        )
        # A demo training plan (reserved capacity): scheduled now, active two minutes after
        # local mode starts, for a day; `/train submit … instance=ml.g5.xlarge plan=demo-plan`
        # waits for its start, then runs on it (`/train plans` shows it once a job asked).
        started = time.time()
        self.sagemaker.plans.add("demo-plan", "ml.g5.xlarge", 2, started + 120, started + 86400)
        self.slack = self._slack_standin(self.options.port)
        self.lam = LambdaStandIn(max_concurrent=self.options.lambda_concurrency)
        self.prices = PriceListStandIn()  # the monitor's daily list prices (TRAINBOT_PRICE_LIST)
        self.template = load_template()
        # Local defaults a deploy would set by parameter: one team for the page's users and
        # the page's user an admin; options (`parameters`) win.
        self.template["Parameters"]["UserTeams"]["Default"] = LOCAL_USER_TEAMS
        self.template["Parameters"]["AdminUsers"]["Default"] = os.environ.get("TRAINBOT_ADMIN_USERS") or LOCAL_ADMINS
        self.template["Parameters"]["LiveMetricsSeconds"]["Default"] = f"{self.options.live_metrics_seconds:g}"
        for name, value in self.options.parameters.items():
            if name not in self.template.get("Parameters", {}):
                raise ValueError(f"template.yaml has no parameter {name!r}")
            self.template["Parameters"][name]["Default"] = value
        self.bot: BotEndpoint | None = None
        self.page: SlackPage | None = None
        self.driver: FunctionDriver | None = None
        self.topic_arn = ""
        self._saved_env: dict[str, str | None] = {}
        self._stop = threading.Event()
        self._log_thread: threading.Thread | None = None
        self._started = False
        self._store: Any = None
        # Where this stack told the CLI how to reach it (None: not written): the shared file,
        # or one of its own when another running `trainbot local` holds that one.
        self.connection_path: Path | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._started = True
        self.aws.start()
        self._set_env({**self.aws.endpoint_env(), "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION})
        from backend.adapters.aws import aws_client

        create_jobs_table(aws_client("dynamodb", region=REGION), TABLE_NAME, self.template)
        self.topic_arn = create_topic(aws_client("sns", region=REGION), TOPIC_NAME)
        # The SageMaker stand-in writes its jobs' logs to moto's CloudWatch Logs, where the
        # monitor reads a failed job's tail and a silent job's last line.
        self.sagemaker.logs_client = aws_client("logs", region=REGION)
        restored = self._restore()

        self.sagemaker.start()
        self.prices.start()
        self._start_page_server()
        restored_messages = self._restore_slack()
        self.slack.add_channel(CHANNEL_ID, CHANNEL_NAME)
        for user in USERS:
            self.slack.add_user(user.user_id, user.name)
        self.lam.start()
        self._set_env(self._trainbot_env())
        self._reset_wiring()

        specs = {s.logical_id: s for s in _functions(self.template)}
        bot_spec = specs["BotFunction"]
        bot_name = f"{STACK_NAME}-bot"
        bot_handler = resolve_handler(bot_spec.handler)
        self.lam.add(bot_name, bot_handler)
        self.bot = BotEndpoint(bot_handler, bot_name)
        self.bot.start()

        self.page = SlackPage(
            self.slack,
            self.bot.url,
            self.signing_secret,
            channel_id=CHANNEL_ID,
            channel_name=CHANNEL_NAME,
            users=USERS,
            stats_png=stats_renderer(lambda: self.store),
        )
        self.page.install()
        self._resume_attempts(restored, restored_messages)

        self.driver = FunctionDriver(
            self.template,
            schedule_seconds=self._schedule_seconds,
            table_names={"JobsTable": TABLE_NAME},
            refs=self._refs(),
            event_source=self.sagemaker.drain_events,
            event_poll_seconds=self.options.events_every,
            skip=("BotFunction",),
            event_concurrency=self.options.lambda_concurrency,
        )
        self.driver.start()
        # Every driven function is invokable by its name too, as on Lambda: the launcher (start
        # on submit, sharing its reserved concurrency with its schedule) and the chart function
        # (the bot's `/train stats` asks it for the chart), each run in this process.
        for function in self.driver.functions.values():
            self.lam.add(function.spec.name, function.invoke)
        if self.options.log_transitions:
            self._log_thread = threading.Thread(target=self._log_transitions, name="local-transitions", daemon=True)
            self._log_thread.start()
        if self.options.write_connection_file:
            self._write_connection_file()

    def _start_page_server(self) -> None:
        """The page is served by the Slack stand-in: on the asked port, or any free one when
        that port is taken (a default port in use must not stop a first run)."""
        port = self.options.port
        try:
            self.slack.start()
        except OSError:
            if port == 0:
                raise
            print(f"port {port} is in use; serving the page on a free port instead", file=self.options.out)
            self.slack = self._slack_standin(0)
            self.slack.start()

    def _slack_standin(self, port: int) -> SlackStandIn:
        return SlackStandIn(
            team_id=TEAM_ID, bot_user_id="U0BOT", port=port, faults=SlackFaults(seed=self.options.seed), clock=time.time
        )

    def stop(self) -> None:
        """Stop everything, in dependency order; close every socket; restore the environment."""
        if not self._started:
            return
        self._started = False
        self._stop.set()
        if self.driver is not None:
            self.driver.stop()
        if self._log_thread is not None:
            self._log_thread.join(timeout=5)
        try:
            self.lam.wait_idle(timeout=5)
        except TimeoutError:
            logger.warning("lazy listeners still running at shutdown")
        for part in (self.bot, self.lam, self.slack, self.sagemaker, self.prices):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    logger.exception("could not stop %s", type(part).__name__)
        if self.options.data_dir is not None:
            try:
                self.snapshot()
            except Exception:
                logger.exception("could not save the jobs table to %s", self.options.data_dir)
        self.aws.stop()
        self._remove_connection_file()
        self._reset_wiring()
        self._restore_env()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what others read ---------------------------------------------------------------------

    @property
    def page_url(self) -> str:
        return self.slack.base_url + "/"

    @property
    def store(self):
        """A job store over the local table (for the demo, the stats chart and tests)."""
        if self._store is None:
            from backend.adapters.aws import aws_client
            from backend.adapters.dynamo import DynamoJobStore

            self._store = DynamoJobStore(aws_client("dynamodb", region=REGION), TABLE_NAME)
        return self._store

    def endpoints(self) -> dict[str, str]:
        return {
            "page": self.page_url,
            "bot": self.bot.url if self.bot else "",
            "aws": self.aws.url,
            "sagemaker": self.sagemaker.url,
            "lambda": self.lam.url,
            "prices": self.prices.url if self._started else "",
        }

    def ports(self) -> list[int]:
        from urllib.parse import urlsplit

        return [port for url in self.endpoints().values() if url and (port := urlsplit(url).port) is not None]

    def connection(self) -> dict[str, str]:
        """What a CLI needs to use this stack: the environment of its settings and endpoints."""
        return {
            "JOBS_TABLE_NAME": TABLE_NAME,
            "NOTIFY_TOPIC_ARN": self.topic_arn,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker.url,
            "AWS_ENDPOINT_URL_LAMBDA": self.lam.url,  # CLI submissions kick the launcher too
            **self.aws.endpoint_env(),
            # The stack's own Trainbot settings (job id prefix, sweep sizes …), so CLI jobs are
            # made exactly as the bot makes them; never the Slack credentials.
            **{k: v for k, v in self._trainbot_env().items() if k.startswith("TRAINBOT_")},
            "TRAINBOT_LOCAL_PAGE": self.page_url,
            "TRAINBOT_LOCAL_CHANNEL": CHANNEL_ID,
        }

    def banner(self) -> str:
        lines = [
            "Trainbot is running on this machine (127.0.0.1 only).",
            f"  page:       {self.page_url}   <- open this, type /train help",
            f"  bot:        {self.bot.url if self.bot else '-'}",
            f"  aws (moto): {self.aws.url}   table {TABLE_NAME}",
            f"  sagemaker:  {self.sagemaker.url}   capacity {', '.join(f'{k}={v}' for k, v in sorted(self.options.capacity.items()))}",
            f"  lambda:     {self.lam.url}",
        ]
        if self.driver is not None:
            for name, every in sorted(self.driver.schedules.items()):
                lines.append(f"  schedule:   {name} every {every:g} s")
        lines.append(f"  chaos:      {self.options.chaos:g}" + ("" if self.options.chaos else " (no random faults)"))
        if self.options.data_dir is not None:
            lines.append(f"  data:       {self.options.data_dir}/{SNAPSHOT} and {SLACK_SNAPSHOT} (the jobs and the channel, saved on exit)")
        else:
            lines.append("  data:       in memory (use --data DIR to keep jobs between runs)")
        if self.connection_path is not None and self.connection_path != connection_file():
            lines.append(f"  CLI:        {CONNECTION_FILE_ENV}={self.connection_path} trainbot --local list --all")
            lines.append(f"              (another trainbot local holds {connection_file()}; this one has a file of its own)")
        elif self.connection_path is not None:
            lines.append(f"  CLI:        trainbot --local list --all   (connection in {self.connection_path})")
        lines.append("Ctrl-C stops everything.")
        return "\n".join(lines)

    # --- wiring ---------------------------------------------------------------------------

    def _schedule_seconds(self, spec: FunctionSpec, rate: float) -> float:
        if spec.logical_id == "LauncherFunction":
            return self.options.launcher_every
        if spec.logical_id == "MonitorFunction":
            return self.options.monitor_every
        return max(1.0, rate / 30.0)  # other schedules: 30x faster than on AWS

    def _trainbot_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        # The template's global function environment, with its references resolved locally
        # (parameters take their defaults).
        variables = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}) or {}
        # The bot's own variables too (this process runs the bot): e.g. the launcher it kicks.
        bot = self.template.get("Resources", {}).get("BotFunction", {}).get("Properties", {})
        variables = {**variables, **((bot.get("Environment") or {}).get("Variables") or {})}
        for name, value in resolve(variables, self._refs(), self.template).items():
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                env[name] = str(value)
        env.update(
            {
                "JOBS_TABLE_NAME": TABLE_NAME,
                "NOTIFY_TOPIC_ARN": self.topic_arn,
                "SLACK_SIGNING_SECRET": self.signing_secret,
                "SLACK_BOT_TOKEN": self.bot_token,
                "SLACK_API_URL": self.slack.api_url,
                "SLACK_TEAM_ID": TEAM_ID,
                "SLACK_SECRET_ID": "",
                "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker.url,
                "AWS_ENDPOINT_URL_LAMBDA": self.lam.url,
                "AWS_ENDPOINT_URL_PRICING": self.prices.url,
                "AWS_LAMBDA_FUNCTION_NAME": f"{STACK_NAME}-bot",
                "TRAINBOT_RETRY_BASE_SECONDS": f"{self.options.retry_base_seconds:g}",
                "TRAINBOT_RETRY_MAX_SECONDS": f"{self.options.retry_max_seconds:g}",
                "TRAINBOT_CAPACITY_MAX_WAIT_SECONDS": os.environ.get("TRAINBOT_CAPACITY_MAX_WAIT_SECONDS") or "900",
                "TRAINBOT_SAGEMAKER_CALLS_PER_SECOND": os.environ.get("TRAINBOT_SAGEMAKER_CALLS_PER_SECOND") or "20",
                # The terminal shows transitions; a handler's warnings (an announcement
                # deferred while Slack refuses, retried through the outbox) are for --verbose.
                "POWERTOOLS_LOG_LEVEL": "INFO" if self.options.verbose else "ERROR",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        return env

    def _refs(self) -> dict[str, str]:
        return {
            "JobsTable": TABLE_NAME,
            "NotifyTopic": self.topic_arn,
            "AWS::StackName": STACK_NAME,
            "AWS::Region": REGION,
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
            "SlackTeamId": TEAM_ID,
        }

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            if name not in self._saved_env:
                self._saved_env[name] = os.environ.get(name)
            if value == "":
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    @staticmethod
    def _reset_wiring() -> None:
        """Forget wired containers, as a cold start would (the environment changed)."""
        import bot.handler
        from backend.entrypoints import runtime

        bot.handler.reset()
        runtime.install(None)
        # Metrics are off locally, so nothing flushes them: drop what the handlers added, or
        # whoever enables metrics next in this process would publish ours too.
        runtime.metrics.clear_metrics()

    # --- data between runs ------------------------------------------------------------------

    def snapshot(self) -> Path | None:
        """Write the jobs table to ``data_dir/jobs.jsonl`` (one DynamoDB-JSON item a line) and the
        Slack stand-in's workspace to ``data_dir/slack.json``."""
        if self.options.data_dir is None:
            return None
        from backend.adapters.aws import aws_client

        client = aws_client("dynamodb", region=REGION)
        directory = Path(self.options.data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / SNAPSHOT
        partial = target.with_suffix(".jsonl.partial")
        with open(partial, "w", encoding="utf-8") as out:
            for page in client.get_paginator("scan").paginate(TableName=TABLE_NAME):
                for item in page.get("Items", []):
                    out.write(json.dumps(item, sort_keys=True) + "\n")
        partial.replace(target)  # never leave half a snapshot in place of a whole one
        slack = directory / SLACK_SNAPSHOT
        partial = slack.with_suffix(".json.partial")
        partial.write_text(json.dumps(self.slack.export_state()), encoding="utf-8")
        partial.replace(slack)
        return target

    def _restore_slack(self) -> int:
        """The Slack workspace of the last run with this data dir, if it kept one."""
        if self.options.data_dir is None:
            return 0
        source = Path(self.options.data_dir) / SLACK_SNAPSHOT
        if not source.is_file():
            return 0
        try:
            return self.slack.import_state(json.loads(source.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"could not restore the Slack workspace from {source}: {exc}; the channel starts empty", file=self.options.out)
            return 0

    def _restore(self) -> int:
        if self.options.data_dir is None:
            return 0
        source = Path(self.options.data_dir) / SNAPSHOT
        if not source.is_file():
            return 0
        from backend.adapters.aws import aws_client

        client = aws_client("dynamodb", region=REGION)
        items = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        for start in range(0, len(items), 25):
            requests = {TABLE_NAME: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            while requests:
                requests = client.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
        return len(items)

    def _resume_attempts(self, restored: int, messages: int = 0) -> None:
        """The SageMaker stand-in keeps nothing between runs: attempts that were running when
        the last run stopped start again under their own names, so the monitor finds them."""
        if not restored:
            return
        for job in self.store.active_jobs():
            attempt = job.current_attempt
            if attempt is None:
                continue
            request = json.dumps(job.job_args.to_request(attempt.name, job.instance_type_of(attempt))).encode()
            status, answer, _code = self.sagemaker.handle("SageMaker.CreateTrainingJob", request)
            if status != 200:
                logger.warning("could not resume %s: %s", attempt.name, answer.get("message"))
        slack = f" and {messages} Slack messages from {SLACK_SNAPSHOT}" if messages else ""
        print(f"restored {restored} items from {self.options.data_dir}/{SNAPSHOT}{slack}", file=self.options.out)

    # --- connection file for the CLI ------------------------------------------------------------

    def _write_connection_file(self) -> None:
        """Tell the CLI how to reach this stack. The shared file belongs to the first running
        `trainbot local`: a second one never overwrites it (stopping, it would then delete the
        first one's connection), it writes a file of its own and says so."""
        path = connection_file()
        body = json.dumps({"pid": os.getpid(), **self.connection()}, indent=2)
        try:
            if not _create_exclusively(path, body):
                holder = _holder(path)
                if holder is not None and holder != os.getpid():
                    own = path.with_name(f"{path.stem}-{os.getpid()}{path.suffix}")
                    print(
                        f"another trainbot local (pid {holder}) is using {path}; this one's connection is in {own}:\n"
                        f"  {CONNECTION_FILE_ENV}={own} trainbot --local list --all",
                        file=self.options.out,
                        flush=True,
                    )
                    path = own
                partial = path.with_name(path.name + f".{os.getpid()}.partial")
                partial.write_text(body, encoding="utf-8")
                partial.replace(path)  # a stale file (its process is gone) is replaced whole
        except OSError as exc:
            logger.warning("could not write %s: %s", path, exc)
            return
        self.connection_path = path

    def _remove_connection_file(self) -> None:
        path, self.connection_path = self.connection_path, None
        if path is None:
            return
        try:
            if path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass

    # --- the terminal log -----------------------------------------------------------------------

    def _log_transitions(self) -> None:
        """Print each job's status changes as they are published on the SNS topic (read from
        the moto server in this process: no subscription, no polling of AWS APIs)."""
        seen = 0
        while not self._stop.wait(0.3):
            try:
                sent = _sent_notifications(self.topic_arn)
            except Exception:
                continue
            for _id, message, _subject, _attributes, _group in sent[seen:]:
                try:
                    self._print_transition(json.loads(message))
                except ValueError:
                    continue
            seen = len(sent)

    def _print_transition(self, body: dict[str, Any]) -> None:
        at = body.get("at", "")
        clock = at[11:19] if len(at) >= 19 else datetime.now().strftime("%H:%M:%S")
        before = body.get("previousStatus") or "·"
        reason = body.get("reason") or ""
        attempts = body.get("attempts") or 0
        line = f"{clock}  {body.get('jobId', '?'):<32} {before:>10} -> {body.get('status', '?'):<10}"
        if attempts:
            line += f" a{attempts}"
        if reason:
            line += f"  {reason[:100]}"
        print(line, file=self.options.out, flush=True)


def _create_exclusively(path: Path, body: str) -> bool:
    """Write ``body`` to ``path`` only if no file is there (atomic: of two stacks starting at
    once, one wins); whether it was written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(body)
    return True


def _holder(path: Path) -> int | None:
    """The pid of the running process that wrote the connection file ``path``; None when the
    file is unreadable or its process is gone (a stack that was killed leaves its file)."""
    try:
        pid = json.loads(path.read_text(encoding="utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(pid, int) or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's: not ours to take
    return pid


def _functions(template: dict[str, Any]) -> list[FunctionSpec]:
    from infra.local.functions import function_specs

    return function_specs(template)


def _sent_notifications(topic_arn: str) -> list[tuple]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    return list(sns_backends[DEFAULT_ACCOUNT_ID][REGION].topics[topic_arn].sent_notifications)
