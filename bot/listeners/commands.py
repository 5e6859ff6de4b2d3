"""The `/train` slash command: validate in the ack, work in the lazy listener.

:func:`acknowledge` parses and validates (merging a preset is one read) and answers within
Slack's 3 seconds: usage on bad input, help, the submit modal, or "Registering…". :func:`work`
re-parses the same payload in the lazy invocation and does what was asked. The slash
command's ``trigger_id`` is the idempotency key: a redelivered payload registers nothing new.
What the ack answers whole (help, the modal, text that does not parse) has no lazy listener.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from backend.adapters.slack import render, waiting
from backend.adapters.slack.client import within_ack
from backend.domain.spec import EXAMPLES, BadCommand, job_spec
from backend.errors import JobNotFound
from bot import grammar
from bot.listeners.errors import answers_errors
from bot.listeners.payloads import actor_of
from bot.usecases import BotService

if TYPE_CHECKING:  # the services come with the container, on its first use
    from backend.domain.model import Job
    from backend.services.submit import SweepOutcome, SweepRoot

# chat.postMessage's answers where the bot cannot post in the channel the command came from.
NOT_POSTABLE = frozenset({"channel_not_found", "not_in_channel", "is_archived", "restricted_action"})


def by_id_or_name(bot: BotService, actor: Any, ref: str, action: Callable[[str, Any], Job], *, live: bool = False) -> Job:
    """``action`` on the job ``ref`` names: its id, or else the name its owner gave it (their
    newest job of that name; for a stop, the one that has not ended). An id costs nothing more;
    a name one page of the owner's jobs."""
    try:
        return action(ref, actor)
    except JobNotFound:
        return action(bot.job_named(ref, actor, live=live), actor)


def register(app: App) -> None:
    # First match wins: a request the ack answers whole gets no lazy listener, since bolt starts
    # every lazy listener of the matched one (an Invoke of this function, within the ack, and
    # an invocation that does nothing).
    app.command("/train", matchers=[answered_by_the_ack])(acknowledge)
    app.command("/train")(ack=acknowledge, lazy=[work])


def answered_by_the_ack(command: dict[str, Any]) -> bool:
    """Help, the submit modal (opened within the ack) and text that does not parse: :func:`work`
    has nothing to do for them."""
    try:
        request = grammar.parse(command.get("text", ""))
    except BadCommand:
        return True
    return isinstance(request, grammar.Help | grammar.OpenSubmitModal)


def acknowledge(ack: Ack, command: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    bot: BotService = context["bot"]
    try:
        request = grammar.parse(command.get("text", ""))
        answer = preflight(bot, request, command, client)
    except BadCommand as exc:
        ack(response_type="ephemeral", text=render.problems_text(exc.problems, exc.usage))
        return
    ack(**answer)


def preflight(bot: BotService, request: grammar.Request, command: dict[str, Any], client: WebClient) -> dict[str, Any]:
    """Validate ``request`` and say what the ack answers (BadCommand if invalid)."""
    checked = validate(bot, request, command)
    match request:
        case grammar.Help(unknown=unknown):
            return {"response_type": "ephemeral", "text": render.help_text(unknown)}
        case grammar.OpenSubmitModal():
            # The trigger id is valid for 3 seconds only: the modal opens here, not lazily.
            within_ack(client).views_open(trigger_id=command["trigger_id"], view=render.submit_modal(command.get("channel_id", "")))
            return {}
        case grammar.Submit():
            return {"response_type": "ephemeral", "text": render.submitting(checked.name)}
        case grammar.Sweep(fields=fields):
            name, size = fields.get("name", ""), checked.size
            if checked.needs_confirmation:
                estimate = bot.submissions.estimate(spec.job_args for spec in checked.specs)
                confirm = render.sweep_confirm(name, size, checked.sweep_id, bot.submissions.sweep_confirm_size, estimate)
                return {"response_type": "ephemeral", **confirm}
            return {"response_type": "ephemeral", "text": render.sweep_registering(name, size)}
        case grammar.Stats(days=days):
            return {"response_type": "ephemeral", "text": render.stats_working(days)}
    return {}


def validate(bot: BotService, request: grammar.Request, command: dict[str, Any]) -> Any:
    """The checks the ack makes (BadCommand if they fail); what they produced, if anything."""
    match request:
        case grammar.Submit(fields=fields):
            return bot.submissions.spec(fields)
        case grammar.Sweep(fields=fields):
            return bot.submissions.plan_sweep(fields, token=command["trigger_id"])
        case grammar.PresetSave(fields=fields):
            # A preset holds only some fields: check their values against a complete example.
            return job_spec({**EXAMPLES, **fields}, grammar.USAGE["preset"])
    return None


@answers_errors
def work(command: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient, body: dict[str, Any]) -> None:
    bot: BotService = context["bot"]
    try:
        request = grammar.parse(command.get("text", ""))
        validate(bot, request, command)
    except BadCommand:
        return  # the ack has answered this already
    actor = actor_of(command)
    channel = command.get("channel_id", "")
    token = command["trigger_id"]

    def say(**message: Any) -> None:
        # Slack recommends at most 4,000 characters: a longer answer is summarized.
        respond(response_type="ephemeral", replace_original=False, **render.fit_answer(message))

    def replace(**message: Any) -> None:
        # The answer that ends what the ack's "Registering…" began takes its place: one message.
        respond(response_type="ephemeral", replace_original=True, **render.fit_answer(message))

    match request:
        case grammar.Submit(fields=fields):
            registered = bot.submissions.submit(fields, actor, token=token, channel_id=channel or None)
            job = bot.get(registered.job.job_id)  # as delivered: its thread, if one could be started
            # A held job's approval card reaches the admins through the outbox (the Slack
            # notifier), as from every other way in.
            replace(text=render.submitted(job, registered.created, bot.estimate([job])))
        case grammar.Sweep(fields=fields):
            outcome = bot.submissions.sweep(fields, actor, token=token, channel_id=channel, post_root=root_poster(client))
            if not outcome.parked:  # a parked sweep's ack showed its confirm button already
                sweep_registered(bot, client, outcome, replace)
        case grammar.Budget(team=team):
            check = bot.budget(actor, team)
            say(text=render.budget_text(check) if check is not None else render.no_budgets())
        case grammar.Status(job_id=ref):
            job = by_id_or_name(bot, actor, ref, lambda job_id, _actor: bot.get(job_id))
            card = render.status_card(job, bot.settings.aws_region, bot.now())
            say(**waiting.with_wait_reason(card, bot.wait_reason(job), bot.now()))
        case grammar.Queue(instance_type=instance_type, page=page):
            say(**waiting.queue_page(bot.queue_page(instance_type, page), bot.now()))
        case grammar.Plans():
            say(text=bot.plans_text(actor))
        case grammar.ListJobs(scope=scope, status=status):
            jobs, cursor = bot.list_jobs(actor, scope, status)
            say(**render.list_page(jobs, scope=scope, status=status, cursor=cursor))
        case grammar.Stop(job_id=ref):
            say(text=render.changed("stop", by_id_or_name(bot, actor, ref, bot.stop, live=True)))
        case grammar.StopSweep(sweep_id=sweep_id):
            say(text=render.sweep_stopped(sweep_id, *bot.stop_sweep(sweep_id, actor)))
        case grammar.Retry(job_id=ref):
            retried = by_id_or_name(bot, actor, ref, bot.retry)
            say(text=render.changed("retry", retried))  # held again: the outbox asks the admins
        case grammar.PresetSave(name=name, fields=fields):
            say(text=render.preset_saved(name, bot.presets.save(name, fields, actor.user_id)))
        case grammar.PresetList():
            say(text=render.preset_list(bot.presets.names()))
        case grammar.PresetShow(name=name):
            preset = bot.presets.get(name)
            say(text=render.preset_show(preset.name, preset.fields, preset.creator))
        case grammar.PresetDelete(name=name):
            bot.presets.delete(name, actor.user_id)
            say(text=render.preset_deleted(name))
        case grammar.Stats(scope=scope, user_id=user_id, days=days, preset=preset):
            stats = bot.stats(actor, scope, user_id, days, preset)
            budget = bot.budget(actor, None)
            public = render.stats_summary(stats, scope=scope, user_id=user_id, preset=preset, days=days, requester=actor.user_id)
            thread_ts = post_in_channel(client, channel, render.with_budget(public, budget))
            if thread_ts is None:  # the bot may not post here: the numbers to the asker alone
                summary = render.stats_summary(stats, scope=scope, user_id=user_id, preset=preset, days=days)
                replace(**render.with_budget(summary, budget))
                say(text=render.stats_not_shared())
                return
            # The chart is drawn by the chart function (matplotlib is not in this artifact) and
            # posted in the summary's thread with a one-line caption.
            from backend.domain.charts import ChartRequest  # a pydantic model: not on help's path

            chart = ChartRequest(
                key=token, scope=scope, user_id=user_id, days=days, preset=preset,
                requester=actor.owner, channel_id=channel, thread_ts=thread_ts,
            )
            replace(text=render.stats_posted(charted=bot.request_chart(chart)))


def post_in_channel(client: WebClient, channel: str, message: dict[str, Any]) -> str | None:
    """Post ``message`` in ``channel`` as the bot; its ts, or None where Slack says the bot may
    not post (a private channel or a DM it is not in)."""
    from slack_sdk.errors import SlackApiError

    if not channel:
        return None
    try:
        return str(client.chat_postMessage(channel=channel, **render.fit_answer(message))["ts"])
    except SlackApiError as exc:
        if (exc.response.get("error") if exc.response is not None else "") in NOT_POSTABLE:
            return None
        raise


def sweep_registered(bot: BotService, client: WebClient, outcome: SweepOutcome, say: Callable[..., object]) -> None:
    """Tell the owner a sweep is registered, with its estimate (a held sweep's one approval
    card, carried by its first job, reaches the admins through the outbox)."""
    say(text=render.sweep_registered(outcome.name, outcome.size, outcome.sweep_id, outcome.estimate, outcome.held))


def root_poster(client: WebClient) -> Callable[[SweepRoot], str]:
    """Post a sweep's thread root with the bot's client; returns a function giving its ts."""

    def post(root: SweepRoot) -> str:
        card = render.sweep_root(root.name, root.owner, root.sweep_id, root.total)
        return str(client.chat_postMessage(channel=root.channel, **card)["ts"])

    return post
