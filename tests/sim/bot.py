"""The simulated world's users, through the bot: each user step delivered as Slack delivers it
to the real bolt app (``bot.app.create_app``, behind the template's handler ``bot.handler``),
whose container holds the world's own store, SageMaker port, dispatcher and sinks, budget,
approvals and clock.

A request is a signed body (``infra/local/standins/slack_signing.py``): a ``/train`` slash
command, a card button's ``block_actions``, the reject modal's ``view_submission``. The
handler acks it; the lazy self-invocation bolt starts (``bot.lazy.SignedLazyRunner``, which
claims the request and signs the event) is caught at the network edge (a recording Lambda
client) and delivered back through the same handler inline, in the same simulated step, after
the ack has been checked. The Slack Web API calls the listeners make (``chat.postMessage``,
``chat.postEphemeral``, ``views.open``, ``respond`` on a ``response_url``) go to the in-process
Slack stand-in, its rate limits off (they are judged on the real clock).

How a step is delivered (``via``): a command by id, by ``name``, a card's ``button``, another
user's (``other``: refused), Slack's redelivery (``again``: ``X-Slack-Retry-Num``), Lambda's
second delivery of the lazy event (``twice``), or the lazy run killed after its first write and
retried by Lambda a minute later (``killed``); a submit or sweep from an ``outsider``.

Checked on every request and step, besides the world's invariants: an ack changes nothing in
the store; every user step gets exactly one final answer (an interim "Registering…" the lazy
listener replaces is not one); a refused user (another user's stop, retry or approval, or a
user the workspace does not allow) changes no job and calls nothing in SageMaker; a step
changes no job but the ones it names (and its sweep's, for a sweep's stop, a retry or an
admin's decision); Slack's redelivery and Lambda's second delivery change and answer nothing
more. Nothing here sleeps; the only real time read is the signature's timestamp (and bolt's
own bookkeeping, and the claims' DynamoDB TTL), which decides nothing here.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from backend.adapters.slack import render
from backend.adapters.slack.secrets import SlackCredentials
from backend.bootstrap import Container
from backend.config import Settings
from backend.domain.model import new_job_id
from backend.domain.records import RecordKind
from backend.services.jobs import Actor
from backend.services.kick import Kicker
from backend.services.submit import sweep_id_for
from infra.local.standins.lambda_invoke import lambda_context
from infra.local.standins.slack import RateLimits, SlackStandIn
from infra.local.standins.slack_signing import (
    block_actions_body,
    lambda_url_event,
    signed_headers,
    slash_command_body,
    view_submission_body,
)

if TYPE_CHECKING:
    from tests.sim.world import SimWorld

SECRET = "5f4dcc3b5aa765d61d8327deb882cf99"  # shaped like a real one: 32 hex characters
TOKEN = "xoxb-sim-token"
CHANNEL = "C0SIM"
FUNCTION = "trainbot-bot"
HELD_TYPE = "ml.p4d.24xlarge"  # needs an admin's approval (TRAINBOT_APPROVAL_INSTANCE_TYPES) in the bot's worlds
OUTSIDER = "U0OUTSIDE"  # not in TRAINBOT_ALLOWED_USERS: the gate refuses them

_BASE = (
    "image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest input=s3://data-bucket/train "
    "output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime=1h"
)
# What each ``submit`` kind types (the direct world builds the same jobs with make_job).
SUBMIT_FIELDS = {
    "single": "instance=ml.g5.xlarge",
    "fallback": "instance=ml.g5.xlarge,ml.g5.2xlarge,ml.g5.4xlarge",
    "spot": "instance=ml.g5.xlarge spot=true max_wait=2h",
    "held": f"instance={HELD_TYPE}",
    "too_big": f"instance={HELD_TYPE} count=4",  # more than its limit: refused at submit
}
SWEEP_VALUES = ("1e-5", "2e-5", "3e-5", "5e-5")
# Lambda's first retry of a failed asynchronous invocation: a minute after the run failed, and a
# run killed by its timeout fails at the bot function's Timeout (60 s in template.yaml).
LAMBDA_RETRY = timedelta(seconds=60) + timedelta(minutes=1)

_standin: SlackStandIn | None = None


def slack_standin() -> SlackStandIn:
    """One Slack stand-in per process (reset for each world): starting a server per schedule
    would cost more than the schedule."""
    global _standin
    if _standin is None:
        _standin = SlackStandIn(team_id="T1", bot_user_id="U0BOT", limits=RateLimits(enabled=False))
        _standin.start()
    return _standin


class LambdaEdge:
    """The Lambda client bolt's lazy runner invokes itself through: it keeps each
    asynchronous invocation's event, which the driver delivers when the ack has been checked."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, *, FunctionName: str, InvocationType: str, Payload: str) -> dict[str, Any]:  # boto3's argument names
        assert InvocationType == "Event", InvocationType
        self.events.append(json.loads(Payload))
        return {"StatusCode": 202}

    def take(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events


@dataclass
class Exchange:
    """One Slack request as the user saw it."""

    what: str
    status: int = 0
    ack: dict[str, Any] | None = None  # the ack's JSON answer, if any
    answers: int = 0  # final answers the user read
    lazy_runs: int = 0
    views: list[dict[str, Any]] = field(default_factory=list)  # modals the request opened


def _fingerprint(job: Any) -> tuple[Any, ...]:
    return (job.status, len(job.history), job.approval.state if job.approval is not None else None)


class SimBot:
    def __init__(self, world: SimWorld) -> None:
        from bot.handler import wire
        from tests.sim.world import ADMIN, LIMITS, OTHER, OWNER

        self.world = world
        self.owner, self.other, self.admin = OWNER, OTHER, Actor(team_id=OWNER.team_id, user_id=ADMIN)
        self.slack = slack_standin()
        self.slack.reset()
        self.slack.add_channel(CHANNEL, "ml-training")
        settings = Settings(
            JOBS_TABLE_NAME="sim",
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_BOT_TOKEN=TOKEN,
            SLACK_API_URL=self.slack.api_url,
            SLACK_TEAM_ID=OWNER.team_id,
            TRAINBOT_ALLOWED_USERS=",".join([OWNER.user_id, OTHER.user_id, ADMIN]),
            TRAINBOT_ADMIN_USERS=ADMIN,
            TRAINBOT_INSTANCE_LIMITS=json.dumps(LIMITS),
            TRAINBOT_APPROVAL_INSTANCE_TYPES=HELD_TYPE,
            TRAINBOT_BUDGET_MODE="approve",
            TRAINBOT_SWEEP_CONFIRM_SIZE="10",
        )
        # The composition root's container, holding the world's own services: what the bot
        # does, the launcher, the monitor and the world's checks see, on the one clock.
        container = Container(settings, world.clock, world.store, world.backend, [world.slack, world.sns], world.dispatcher, world.jobs)  # type: ignore[arg-type]
        container.extras.update(
            budgets=world.budgets, cost_guard=world.guard, approvals=world.approvals, rng=world.rng,
            kicker=Kicker(world.store, None, clock=world.clock),  # type: ignore[arg-type]  # no launcher function: the schedule launches
        )
        self.wired = wire(container, SlackCredentials(signing_secret=SECRET, bot_token=TOKEN))
        self.edge = LambdaEdge()
        self.wired.lazy_runner.lambda_client = self.edge
        self.context = lambda_context(FUNCTION)
        self.serial = 0  # requests made: each its own trigger id (a job's id derives from it)

    # --- steps ----------------------------------------------------------------------------

    def submit(self, kind: str, via: str = "command") -> None:
        name, trigger = self._next("j")
        user = OUTSIDER if via == "outsider" else self.owner.user_id
        text = f"submit name={name} {SUBMIT_FIELDS[kind]} {_BASE} hp.lr=3e-5"
        interim = render.submitting(name)
        with self._step(f"/train {text.split(' image=')[0]} ({via})", set()) as step:
            step.add(self.command(text, user, trigger, via=via, interim=interim))
        job_id = new_job_id(name, trigger)
        if self.world.raw_store.existing_ids([job_id]):
            if via == "outsider" or kind == "too_big":
                self.world._violated(-1, f"bot: {job_id} was registered by a refused /train submit ({kind}, {via})")
            self.world.job_ids.append(job_id)

    def sweep(self, size: int, kind: str, via: str = "command") -> None:
        name, trigger = self._next("s")
        user = OUTSIDER if via == "outsider" else self.owner.user_id
        instance = HELD_TYPE if kind == "held" else "ml.g5.xlarge"
        text = f"sweep name={name} instance={instance} {_BASE} hp.lr={','.join(SWEEP_VALUES[:size])}"
        with self._step(f"/train sweep {name} x{size} {kind} ({via})", set()) as step:
            step.add(self.command(text, user, trigger, via=via, interim=render.sweep_registering(name, size)))
        sweep_id = sweep_id_for(trigger)
        record = self.world.raw_store.get_record(RecordKind.SWEEP, sweep_id)
        if record is None:
            return
        if via == "outsider":
            self.world._violated(-1, f"bot: sweep {sweep_id} was registered for a user the workspace does not allow")
        ids = [str(i) for i in record.get("JobIds") or []]
        for job_id in ids:
            if job_id not in self.world.job_ids:
                self.world.job_ids.append(job_id)
        self.world.sweeps[sweep_id] = ids

    def user(self, action: str, job_id: str, via: str = "command") -> None:
        """A user's move on ``job_id``: a command by id or by name, a card's button, another
        user's (refused), redelivered by Slack, or its lazy run delivered twice by Lambda."""
        job = self.world.peek(job_id)
        refused = via == "other"
        who = self.other if refused else self.admin if action in ("approve", "reject") else self.owner
        sweep = [] if job.sweep_id is None else self.world.sweeps.get(job.sweep_id, [])
        touched = {job_id, *(sweep if action != "stop" else ())}
        if action == "stop-sweep" and not sweep:
            return  # a job of no sweep: there is no sweep id to type or card to press
        with self._step(f"{action} {job_id} ({via}) as {who.user_id}", set() if refused else touched, refused=refused) as step:
            trigger = self._next("")[1]
            if action in ("stop", "retry") and via != "button":
                ref = job.name if via == "name" else job_id
                step.add(self.command(f"{action} {ref}", who.user_id, trigger, via=via))
            elif action == "stop-sweep" and via != "button":
                step.add(self.command(f"stop {job.sweep_id}", who.user_id, trigger, via=via))
            elif action in ("stop", "retry", "stop-sweep", "approve"):
                action_id = {"stop": render.STOP_ACTION, "retry": render.RETRY_ACTION, "stop-sweep": render.STOP_SWEEP_ACTION}
                value = job.sweep_id if action == "stop-sweep" else job_id
                step.add(self.press(action_id.get(action, render.APPROVE_ACTION), str(value), who.user_id, trigger, via=via))
            else:  # reject: the button opens the reason modal (admins only), its submission decides
                pressed = self.press(render.REJECT_ACTION, job_id, who.user_id, trigger, via=via)
                step.add(pressed)
                for view in pressed.views:
                    step.add(self.submit_view(view, who.user_id, self._next("")[1], via=via))

    def look(self, what: str, job_id: str | None, via: str = "command") -> None:
        """A command that only reads (``list``, ``status <job>``, ``queue``, ``stats``,
        ``budget``, ``plans``, ``help``), the owner's or another user's: one answer, no job
        changed, SageMaker not called."""
        user = self.other if via == "other" else self.owner
        text = f"status {job_id}" if what == "status" and job_id else what
        with self._step(f"/train {text} ({via}) as {user.user_id}", set()) as step:
            calls = len(self.slack.calls)
            # /train stats acks "Working out…" (an interim), posts the numbers in the channel and
            # replaces the interim with where they are: that is its one answer.
            interim = render.stats_working(14) if what == "stats" else None
            exchange = self.command(text, user.user_id, self._next("")[1], via=via, interim=interim)
            posted = [c for c in self.slack.calls[calls:] if c.method == "chat.postMessage" and c.params.get("channel") == CHANNEL]
            if len(posted) > (1 if what == "stats" else 0):
                self.world._violated(-1, f"bot: /train {text} posted {len(posted)} messages in the channel")
            step.add(exchange)
            if (len(self.world.sagemaker.stops), len(self.world.sagemaker.created)) != (step.stops, step.created):
                self.world._violated(-1, f"bot: /train {text}, a command that only reads, called SageMaker")

    # --- requests ---------------------------------------------------------------------------

    def command(self, text: str, user: str, trigger: str, *, via: str, interim: str | None = None) -> Exchange:
        url = self.slack.response_url(CHANNEL, user, awaits_ack=True)
        body = slash_command_body(text=text, user_id=user, team_id=self.owner.team_id, channel_id=CHANNEL,
                                  response_url=url, trigger_id=trigger)
        return self._deliver(f"/train {text[:60]}", body, via, show_ack=url, interim=interim)

    def press(self, action_id: str, value: str, user: str, trigger: str, *, via: str) -> Exchange:
        url = self.slack.response_url(CHANNEL, user)
        body = block_actions_body(action_id, value, user_id=user, team_id=self.owner.team_id, channel_id=CHANNEL,
                                  response_url=url, trigger_id=trigger, message_ts="1700000000.000100")
        return self._deliver(f"button {action_id} {value}", body, via)

    def submit_view(self, view: dict[str, Any], user: str, trigger: str, *, via: str) -> Exchange:
        values = {"reason": {"value": {"type": "plain_text_input", "value": "too expensive"}}}
        body = view_submission_body(str(view.get("callback_id")), values, user_id=user, team_id=self.owner.team_id,
                                    private_metadata=str(view.get("private_metadata") or ""), view_id=str(view["id"]), trigger_id=trigger)
        return self._deliver(f"modal {view.get('callback_id')}", body, via)

    def _deliver(self, what: str, body: str, via: str, *, show_ack: str | None = None, interim: str | None = None) -> Exchange:
        world = self.world
        exchange = Exchange(what)
        before, calls, views = self._store_state(), len(self.slack.calls), len(self.slack.views)
        shown = len(self.slack.ephemerals())
        response = self._handle(lambda_url_event(body, signed_headers(SECRET, body)))
        exchange.status = int(response.get("statusCode") or 0)
        text = response.get("body") or ""
        exchange.ack = json.loads(text) if exchange.status == 200 and text.startswith("{") else None
        if self._store_state() != before:
            world._violated(-1, f"bot: the ack of {what} changed the store (the ack only parses and validates)")
        if exchange.status != 200:
            world._violated(-1, f"bot: {what} answered HTTP {exchange.status}: {text[:200]}")
        if show_ack is not None:
            self.slack.show_ack(show_ack, exchange.ack)  # Slack shows the ack's answer before any later one
        if via == "again":
            # Slack did not see the ack in time and delivers the same request again, retry 1.
            headers = {**signed_headers(SECRET, body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
            again = self._handle(lambda_url_event(body, headers))
            if again.get("statusCode") != 200 or again.get("body") or self._store_state() != before:
                world._violated(-1, f"bot: Slack's redelivery of {what} was not acknowledged without effect: {again}")
        lazy = self.edge.take()
        if len(lazy) > 1:
            world._violated(-1, f"bot: {what} started {len(lazy)} lazy runs")
        for event in lazy:
            if via == "killed":
                from tests.sim.world import SimCrash

                # The lazy run is killed (its Lambda timed out) right after its first write past
                # the claim took effect; Lambda delivers the event again a minute after its timeout.
                with world.plan(("ok", "crash_after")):
                    try:
                        self._handle(event)
                    except SimCrash:
                        world.log.append(f"  bot: the lazy run of {what} was killed; Lambda retries it")
                exchange.lazy_runs += 1
                world.clock.advance(LAMBDA_RETRY)
            for _ in range(2 if via == "twice" else 1):  # Lambda may deliver an asynchronous event twice
                self._handle(event)
                exchange.lazy_runs += 1
        if self.edge.events:
            world._violated(-1, f"bot: the lazy run of {what} started more lazy runs")
        # What the user reads: the ephemeral messages this request left (the ack's shown one, or
        # what replaced it; a "Registering…" nothing replaced is not an answer), a modal's
        # errors, a direct message.
        messages = [m for m in self.slack.ephemerals()[shown:] if interim is None or m.get("text") != interim]
        errors = bool(exchange.ack and exchange.ack.get("response_action") == "errors")
        exchange.answers = len(messages) + int(errors) + _direct_messages(self.slack.calls[calls:])
        exchange.views = self.slack.views[views:]
        world.log.append(f"  bot: {what} ({via}): ack {exchange.status} {str(exchange.ack)[:80]}; "
                         f"{exchange.lazy_runs} lazy runs; {exchange.answers} answers")
        return exchange

    def _handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """The template's bot handler, wired with this world's container (as tests/slack_world.py
        wires it): everything a request meets in Lambda, from the signature check on."""
        import bot.handler
        from bot.lazy import LazyListenerFailed

        held, bot.handler._wired = bot.handler._wired, self.wired
        try:
            return bot.handler.handler(event, self.context)
        except LazyListenerFailed as exc:
            cause = exc.__cause__
            self.world._violated(-1, f"bot: {exc}: {type(cause).__name__}: {cause}")
            raise
        finally:
            bot.handler._wired = held

    # --- checks -----------------------------------------------------------------------------

    def _step(self, what: str, touched: set[str], *, refused: bool = False) -> _Step:
        return _Step(self, what, touched, refused)

    def _jobs(self) -> dict[str, tuple[Any, ...]]:
        return {job_id: _fingerprint(self.world.peek(job_id)) for job_id in self.world.job_ids}

    def _store_state(self) -> Any:
        """What to compare before and after an ack: the in-memory store's whole state; for
        DynamoDB, the writes its client has sent (a scan of the table per request would cost
        most of a moto schedule)."""
        raw = self.world.raw_store
        if hasattr(raw, "_jobs"):
            return (dict(raw._jobs), copy.deepcopy(raw._records), dict(raw._outbox), dict(raw._leases), dict(raw._folded))
        # Once per client (the moto test's schedules share one), counting into this module.
        raw._client.meta.events.register("before-call.dynamodb.*", _count_dynamodb_write, unique_id="trainbot-sim-bot-writes")
        return _dynamodb_writes[0]

    def _next(self, prefix: str) -> tuple[str, str]:
        self.serial += 1
        seed = self.world.seed
        return f"{prefix}{self.serial}", f"{7000000000 + self.serial}.{seed}.{self.serial:032x}"


class _Step:
    """One user step through the bot: its requests' answers add up to one, and it changes no job
    but ``touched`` (none when ``refused``)."""

    def __init__(self, bot: SimBot, what: str, touched: set[str], refused: bool) -> None:
        self.bot, self.what, self.touched, self.refused = bot, what, touched, refused
        self.exchanges: list[Exchange] = []

    def add(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)

    def __enter__(self) -> _Step:
        self.world = self.bot.world
        self.world.log.append(f"  bot step: {self.what}")
        self.jobs = self.bot._jobs()
        self.stops = len(self.world.sagemaker.stops)
        self.created = len(self.world.sagemaker.created)
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:
            return
        world = self.world
        answers = sum(e.answers for e in self.exchanges)
        if answers != 1:
            world._violated(-1, f"bot: {self.what} gave the user {answers} final answers, not one: "
                                f"{[(e.what, e.ack, e.answers) for e in self.exchanges]}")
        after = self.bot._jobs()
        changed = sorted(j for j in after if after[j] != self.jobs.get(j, after[j]) and j not in self.touched)
        if changed:
            why = "though it was refused" if self.refused else "which it did not name"
            world._violated(-1, f"bot: {self.what} changed {changed}, {why}")
        if self.refused and (len(world.sagemaker.stops), len(world.sagemaker.created)) != (self.stops, self.created):
            world._violated(-1, f"bot: the refused {self.what} called SageMaker")


_DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_dynamodb_writes = [0]


def _count_dynamodb_write(model: Any, **_: Any) -> None:
    if model.name in _DYNAMODB_WRITES:
        _dynamodb_writes[0] += 1


def _direct_messages(calls: list[Any]) -> int:
    """Messages posted to a user's DM (a modal's answer where no ephemeral could go)."""
    return sum(1 for c in calls if c.method == "chat.postMessage" and str(c.params.get("channel", "")).startswith(("U", "D")))
