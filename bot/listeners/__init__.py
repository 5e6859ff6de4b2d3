"""Bolt listeners, one module per kind of Slack request; each exposes ``register(app)``.

Listeners are plain module-level functions (a test calls them with a fake ``ack``/``respond``
and a ``context`` holding the :class:`bot.usecases.BotService` under ``"bot"``). The ack
listener only parses and validates, within Slack's 3 seconds; the work runs in a lazy
listener, which on Lambda is a fresh asynchronous invocation of the same function.
"""

from __future__ import annotations

from slack_bolt import App


def register_all(app: App) -> None:
    from bot.listeners import actions, approvals, commands, errors, views

    commands.register(app)
    actions.register(app)
    views.register(app)
    approvals.register(app)
    errors.register(app)
