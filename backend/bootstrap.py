"""The composition root: wires adapters to services once per cold start.

Entry points (Lambda handlers, the CLI, local mode) call :func:`build` with settings read from
the environment; tests call it with overrides (a fake clock, pre-built clients, fakes).
Nothing else constructs adapters.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backend.adapters.aws import LazyClient
from backend.adapters.dynamo import DynamoJobStore
from backend.adapters.sagemaker import SageMakerBackend
from backend.adapters.sns import SNS_MAX_ATTEMPTS, SnsNotifier
from backend.config import Settings
from backend.domain.times import utcnow
from backend.ports import ChartTrigger, JobStore, Notifier, TrainingBackend
from backend.services.jobs import JobService
from backend.services.notify import Dispatcher

if TYPE_CHECKING:
    from backend.services.budget import Approvals, Budgets, CostGuard
    from backend.services.forensics import Forensics
    from backend.services.kick import Kicker
    from backend.services.launcher import Launcher
    from backend.services.monitor import Monitor
    from backend.services.pacing import TokenBucket
    from backend.services.plans import PlanBook
    from backend.services.prices import PriceBook
    from backend.services.queue import QueueView
    from backend.services.rollup import StatsRoller
    from backend.services.stats import StatsReader
    from backend.services.stats_chart import StatsCharts


LOGS_CALLS_PER_SECOND = 5.0


@dataclass
class Container:
    settings: Settings
    clock: Callable[[], datetime]
    store: JobStore
    backend: TrainingBackend
    notifiers: list[Notifier]
    dispatcher: Dispatcher
    jobs: JobService
    extras: dict[str, Any] = field(default_factory=dict)

    def _pacer(self) -> TokenBucket:
        """Each scheduled function paces its own SageMaker calls (TRAINBOT_SAGEMAKER_CALLS_PER_SECOND)."""
        from backend.services.pacing import TokenBucket

        rate = self.settings.sagemaker_calls_per_second
        return TokenBucket(rate=rate, burst=max(1.0, rate))

    @property
    def launcher(self) -> Launcher:
        from backend.services.launcher import Launcher

        if "launcher" not in self.extras:
            self.extras["launcher"] = Launcher(
                self.store,
                self.backend,
                self.dispatcher,
                policy=self.settings.retry_policy,
                instance_limits=self.settings.instance_limits,
                pacer=self._pacer(),
                clock=self.clock,
                rng=self.extras.get("rng") or random.Random(),
                plans=self.plans,
            )
        return self.extras["launcher"]

    @property
    def plans(self) -> PlanBook:
        """Training plans: team defaults (TRAINBOT_TEAM_PLANS), the cached board, the launcher's
        gate; SageMaker's ListTrainingPlans (or ``extras["plan_source"]``, a fake) behind it."""
        from backend.adapters.sagemaker_plans import SageMakerTrainingPlans
        from backend.services.plans import PlanBook

        if "plans" not in self.extras:
            source = self.extras.get("plan_source")
            if source is None and self.extras.get("sagemaker_client") is not None:
                source = SageMakerTrainingPlans(self.extras["sagemaker_client"])
            self.extras["plans"] = PlanBook(
                self.store, source, clock=self.clock, team_plans=self.settings.team_plans, team_of=self.settings.team_of
            )
        return self.extras["plans"]

    @property
    def rollup(self) -> StatsRoller:
        """The stats rollup the monitor's scheduled run ends with (backend.services.rollup)."""
        from backend.services.rollup import StatsRoller

        if "rollup" not in self.extras:
            self.extras["rollup"] = StatsRoller(self.store, self.clock)
        return self.extras["rollup"]

    @property
    def monitor(self) -> Monitor:
        from backend.services.monitor import Monitor

        if "monitor" not in self.extras:
            self.extras["monitor"] = Monitor(
                self.store,
                self.backend,
                self.dispatcher,
                policy=self.settings.retry_policy,
                pacer=self._pacer(),
                clock=self.clock,
                rng=self.extras.get("rng") or random.Random(),
                on_attempt_end=self.budgets.record_attempt if self.budgets is not None else None,
                forensics=self.forensics,
                readmit=self.cost_guard.readmit if self.budgets is not None else None,
                release=self.budgets.release if self.budgets is not None else None,
                plan_board=self.plans.board,
                plan_end_warning=timedelta(seconds=self.settings.plan_end_warning_seconds),
                live_metrics_every=timedelta(seconds=self.settings.live_metrics_seconds),
            )
        return self.extras["monitor"]

    @property
    def forensics(self) -> Forensics:
        """Log tails of failed attempts and stall warnings (CloudWatch Logs, paced)."""
        from backend.adapters.logs import CloudWatchTrainingLogs
        from backend.services.forensics import Forensics
        from backend.services.pacing import TokenBucket

        if "forensics" not in self.extras:
            logs = self.extras.get("logs")
            if logs is None:
                # CloudWatch Logs' read quotas are per account and shared with everyone reading
                # logs: a few calls a second is plenty for failures and stall checks.
                client = LazyClient("logs", region=self.settings.aws_region, max_attempts=3)
                logs = CloudWatchTrainingLogs(client, TokenBucket(rate=LOGS_CALLS_PER_SECOND, burst=LOGS_CALLS_PER_SECOND))
            stall = next((n for n in self.notifiers if callable(getattr(n, "stalled", None))), None)
            self.extras["forensics"] = Forensics(
                self.store,
                logs,
                clock=self.clock,
                stall_notifier=stall,  # type: ignore[arg-type]  # it has stalled(), checked above
                stall_default_seconds=self.settings.stall_alert_seconds,
            )
        return self.extras["forensics"]

    @property
    def kicker(self) -> Kicker:
        """Start on submit: asks for one launcher run when jobs are queued (coalesced), if
        TRAINBOT_LAUNCHER_FUNCTION names the launcher; the launcher consumes the kick."""
        from backend.services.kick import KICK_EVENT, Kicker

        if "kicker" not in self.extras:
            trigger = self.extras.get("launch_trigger")
            if trigger is None and self.settings.launcher_function:
                from backend.adapters.launch_trigger import LambdaLaunchTrigger

                client = LazyClient("lambda", region=self.settings.aws_region, max_attempts=2)
                trigger = LambdaLaunchTrigger(client, self.settings.launcher_function, KICK_EVENT)
            self.extras["kicker"] = Kicker(self.store, trigger, clock=self.clock)
        return self.extras["kicker"]

    @property
    def chart_trigger(self) -> ChartTrigger | None:
        """Asks the chart function (TRAINBOT_CHART_FUNCTION) for `/train stats`' chart; None when
        no chart function is configured (the answer then comes without one)."""
        if "chart_trigger" not in self.extras:
            trigger = None
            if self.settings.chart_function:
                from backend.adapters.chart_trigger import LambdaChartTrigger

                trigger = LambdaChartTrigger(LazyClient("lambda", region=self.settings.aws_region, max_attempts=2), self.settings.chart_function)
            self.extras["chart_trigger"] = trigger
        return self.extras["chart_trigger"]

    @property
    def stats_reader(self) -> StatsReader:
        """Job statistics as this deployment counts them (retention, prices, teams)."""
        from backend.services.stats import StatsReader

        if "stats_reader" not in self.extras:
            self.extras["stats_reader"] = StatsReader(
                self.store,
                self.clock,
                retention_days=self.settings.retention_days,
                prices=lambda: self.cost_guard.prices,
                team_of=self.settings.team_of,
                plans=self._plans_known,
            )
        return self.extras["stats_reader"]

    def _plans_known(self) -> dict[str, Any]:
        """The training plans as the launcher last read them (none before it has)."""
        board = self.plans.board()
        return dict(board.plans) if board is not None else {}

    @property
    def charts(self) -> StatsCharts:
        """The chart function's use case: draw a requested stats chart and post it in Slack
        (``extras["chart_sharer"]`` replaces the Slack sharer)."""
        from backend.services.stats_chart import StatsCharts

        if "charts" not in self.extras:
            sharer = self.extras.get("chart_sharer")
            if sharer is None:
                from backend.adapters.slack.client import LazyWebClient
                from backend.adapters.slack.files import SlackChartSharer

                sharer = SlackChartSharer(LazyWebClient(self.settings, purpose="notify"))
            self.extras["charts"] = StatsCharts(self.store, self.stats_reader, sharer, clock=self.clock)
        return self.extras["charts"]

    @property
    def queue(self) -> QueueView:
        """The queue in launch order and why each job waits (read only)."""
        from backend.services.queue import QueueView

        if "queue" not in self.extras:
            self.extras["queue"] = QueueView(
                self.store,
                limits=self.settings.instance_limits,
                capacity_max_wait=timedelta(seconds=self.settings.capacity_max_wait_seconds),
                clock=self.clock,
            )
        return self.extras["queue"]

    @property
    def submissions(self):
        """Submit and sweep (presets, prefix, idempotency): what the bot and the CLI call."""
        from backend.services.presets import PresetBook
        from backend.services.submit import SubmitService

        if "submissions" not in self.extras:
            self.extras["submissions"] = SubmitService(
                self.jobs,
                self.store,
                PresetBook(
                    self.store,
                    is_admin=self.settings.is_admin,
                    teams={*self.settings.user_teams.values(), *self.settings.team_budgets},
                ),
                clock=self.clock,
                sweep_confirm_size=self.settings.sweep_confirm_size,
                sweep_max_size=self.settings.sweep_max_size,
                on_queued=self.kicker.kick,
                guard=self.cost_guard,
                instance_limits=self.settings.instance_limits,
                plans=self.plans,
            )
        return self.extras["submissions"]

    @property
    def budgets(self) -> Budgets | None:
        """Weekly team budgets (TRAINBOT_TEAM_BUDGETS); None when none is configured."""
        from backend.services.budget import Budgets

        if "budgets" not in self.extras:
            s = self.settings
            self.extras["budgets"] = (
                Budgets(self.store, budgets=s.team_budgets, user_teams=s.user_teams, clock=self.clock) if s.team_budgets else None
            )
        return self.extras["budgets"]

    @property
    def price_book(self) -> PriceBook:
        """The prices estimates use: the daily list prices (TRAINBOT_PRICE_LIST) or the
        built-in table, TRAINBOT_INSTANCE_PRICES over either."""
        from backend.domain.cost import repo_prices
        from backend.services.prices import PriceBook

        if "price_book" not in self.extras:
            s = self.settings
            source = self.extras.get("price_source")
            if source is None and s.price_list:
                from backend.adapters.pricing import PriceList, endpoint_region

                source = PriceList(LazyClient("pricing", region=endpoint_region(s.aws_region), max_attempts=3))
            self.extras["price_book"] = PriceBook(
                self.store,
                region=s.aws_region,
                builtin=repo_prices(),
                overrides=s.instance_prices,
                clock=self.clock,
                source=source if s.price_list else None,
                use_list_prices=s.price_list,
            )
        return self.extras["price_book"]

    @property
    def cost_guard(self) -> CostGuard:
        """Estimates (the price book's table), approval rules, budgets."""
        from backend.domain.approval import ApprovalRules
        from backend.services.budget import CostGuard

        if "cost_guard" not in self.extras:
            s = self.settings
            rules = ApprovalRules(s.approval_instance_hours, s.approval_instance_types, s.approval_sweep_size)
            self.extras["cost_guard"] = CostGuard(self.price_book.table, rules, self.budgets, budget_mode=s.budget_mode)
        return self.extras["cost_guard"]

    @property
    def approvals(self) -> Approvals:
        """Admins' approve/reject of held jobs."""
        from backend.services.budget import Approvals

        if "approvals" not in self.extras:
            self.extras["approvals"] = Approvals(
                self.store,
                self.dispatcher,
                is_admin=self.settings.is_admin,
                clock=self.clock,
                records=self.store,
                budgets=self.budgets,
                on_approved=self.kicker.kick,
            )
        return self.extras["approvals"]


def build(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], object] = time.sleep,
    dynamodb: Any = None,
    sagemaker: Any = None,
    sns: Any = None,
    notifiers: Callable[[JobStore], list[Notifier]] | None = None,
    rng: random.Random | None = None,
    store_override: JobStore | None = None,
) -> Container:
    """Wire Trainbot. Clients not given are created from the environment (boto3 honours
    ``AWS_ENDPOINT_URL_*``) on their first use (:class:`LazyClient`): every entry point's cold
    start pays only for the clients its invocation calls. ``notifiers`` (a factory given the store) replaces the default
    set: SNS when ``NOTIFY_TOPIC_ARN`` is set, Slack when a bot token or secret is configured.
    ``store_override`` replaces the DynamoDB store (tests pass the in-memory fake). ``sleep``
    waits on ``clock`` (Slack pacing): a simulated clock comes with its own, which moves it, or
    a wait on it would never end."""
    store: JobStore
    if store_override is not None:
        store = store_override
    else:
        dynamodb = dynamodb or LazyClient("dynamodb", region=settings.aws_region)
        store = DynamoJobStore(dynamodb, settings.jobs_table_name, retention_days=settings.retention_days)
    if notifiers is None:
        chosen: list[Notifier] = []
        if settings.notify_topic_arn:
            chosen.append(SnsNotifier(sns or LazyClient("sns", region=settings.aws_region, max_attempts=SNS_MAX_ATTEMPTS), settings.notify_topic_arn))
        if settings.slack_bot_token or settings.slack_secret_id:
            chosen.extend(_slack_notifiers(settings, store, clock, sleep))
    else:
        chosen = notifiers(store)
    store.set_notify_targets([n.name for n in chosen])
    sagemaker = sagemaker or LazyClient("sagemaker", region=settings.aws_region, max_attempts=3)
    backend = SageMakerBackend(sagemaker)
    dispatcher = Dispatcher(store, chosen, clock)
    jobs = JobService(store, backend, dispatcher, clock=clock, is_admin=settings.is_admin, job_id_prefix=settings.job_id_prefix)
    container = Container(settings, clock, store, backend, chosen, dispatcher, jobs)
    # Lazily: a retry reserves its budget again, a stop gives it back (backend.services.budget).
    jobs.use_budget(lambda held: container.cost_guard.admit(held), lambda job: container.budgets and container.budgets.release(job))
    container.extras["sagemaker_client"] = sagemaker  # training plans read through it too
    # Whoever ends a job (the launcher failing it, the monitor, a stop, a reject), its
    # reservation goes back then: every ending write passes through the dispatcher.
    dispatcher.on_end(lambda job: container.budgets and container.budgets.release(job))
    # Approval cards (the Slack notifier) show the cost guard's estimate, priced as at submit.
    for notifier in chosen:
        price_with = getattr(notifier, "price_with", None)
        if price_with is not None:
            price_with(lambda jobs: container.cost_guard.estimate(jobs))
    if rng is not None:
        container.extras["rng"] = rng
    return container


def _slack_notifiers(
    settings: Settings, store: JobStore, clock: Callable[[], datetime], sleep: Callable[[float], object]
) -> list[Notifier]:
    """The Slack notifiers (thread replies and root cards, card updates); they live with the
    bot because they share the bot's rendering."""
    from backend.adapters.slack.notifier import build_slack_notifiers

    return build_slack_notifiers(settings, store, clock=clock, sleep=sleep)
