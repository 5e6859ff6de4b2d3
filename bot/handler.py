"""The bot's Lambda entry (``bot.handler.handler`` in template.yaml): a Function URL event in,
bolt's answer out. Wiring happens once per cold start, on the first signed event.

Authenticity comes first, in two steps so that refusing costs as little as possible:
1. before anything is wired or any secret fetched, a request with no signature, a timestamp that
   is not a fresh number, or a body that is not UTF-8 text is a plain 401 (:mod:`bot.authenticity`);
2. the credentials must be real: until the operator has put Slack's signing secret and bot token
   into the stack's secret (a fresh deploy holds a generated value and a placeholder token), every
   request is a 503 that says so, counted as ``BotNotConfigured`` (alarmed in template.yaml).
   The secret is read again (it is kept for 5 minutes) until it is real, so filling it
   in needs no redeploy;
3. then the signature, and the body's shape, are checked before bolt parses anything; our own
   lazy self-invocations are checked by our HMAC instead of Slack's timestamp rule, since Lambda
   may deliver them late (:mod:`bot.lazy`);
4. a delivery Slack retries (``X-Slack-Retry-Num``: the first one is being or was handled) is
   acknowledged without running anything again.

A lazy listener that fails makes the invocation fail (bolt would only log it), counted as
``LazyListenerFailed``, so Lambda retries it and the dead-letter queue and alarms see it.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backend.entrypoints import coldstart  # in Lambda: the collector is paused until the first invocation ends
from bot.authenticity import is_lazy, lazy_key, lazy_refusal, refusal, unsigned_refusal, unusable_secret

if TYPE_CHECKING:  # a type only: an unsigned request is refused without importing Powertools
    from aws_lambda_powertools.utilities.typing import LambdaContext

UNAUTHORIZED = {"statusCode": 401, "body": "", "headers": {"content-type": "text/plain"}}
NOT_CONFIGURED = {
    "statusCode": 503,
    "body": "Trainbot is not configured yet: its Slack signing secret and bot token are not set "
    "(README, Deploy, step 3). Nothing was done.",
    "headers": {"content-type": "text/plain"},
}


@dataclass(frozen=True)
class _Wired:
    slack_handler: Any  # slack_bolt.adapter.aws_lambda.SlackRequestHandler
    signing_secret: str
    lazy_runner: Any  # bot.lazy.SignedLazyRunner

    @property
    def lazy_key(self) -> bytes:
        return lazy_key(self.signing_secret)


_wired: _Wired | None = None
_container: Any = None  # the container (wired on first use), kept while the secret is not yet real


@coldstart.settles
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    why = unsigned_refusal(event, time.time())
    if why is not None:
        _log_refusal(why)
        return dict(UNAUTHORIZED)
    wired = _wiring()
    if wired is None:
        return dict(NOT_CONFIGURED)
    lazy = is_lazy(event)
    why = lazy_refusal(event, wired.lazy_key) if lazy else refusal(event, wired.signing_secret, time.time())
    if why is not None:
        _log_refusal(why)
        return dict(UNAUTHORIZED)
    if not lazy and _header(event, "x-slack-retry-num"):
        # Slack retries a delivery it thinks failed (no 200 within 3 s), even while the first is
        # still running: that one acks and starts the work; this one must not do either again.
        _count("SlackRetryAcknowledged")
        return {"statusCode": 200, "body": "", "headers": {}}
    response = wired.slack_handler.handle(event, context)
    failure = wired.lazy_runner.take_failure() if lazy else None
    if failure is not None:
        from bot.lazy import LazyListenerFailed

        _count("LazyListenerFailed")
        raise LazyListenerFailed(f"lazy listener {_header(event, 'x-slack-bolt-lazy-function-name')} failed") from failure
    return response


def _header(event: dict[str, Any], name: str) -> str:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) and value else value)
    return ""


def _wiring() -> _Wired | None:
    """The wired app, or None (after logging and counting why) while the credentials are not real."""
    global _wired, _container
    if _wired is None:
        from backend.adapters.slack.secrets import slack_credentials
        from backend.config import Settings
        from backend.errors import ConfigError

        try:
            if _container is None:
                _container = _Deferred(Settings.from_env())
            credentials = slack_credentials(_container.settings)
        except ConfigError as exc:  # an empty value in the secret: not configured, as a placeholder is
            _refuse_unconfigured(str(exc))
            return None
        problem = unusable_secret(credentials.signing_secret, credentials.bot_token)
        if problem is not None:
            _refuse_unconfigured(problem)
            return None
        _wired = wire(_container, credentials)
        _container = None
    return _wired


class _Deferred:
    """The composition root's container (:func:`backend.bootstrap.build`), wired on the first use
    of anything but its settings: the ack of ``/train help`` (of the modal, of a command that does
    not parse) needs no store and no service, so its cold start imports none of them."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._built: Any = None
        self._building = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and friends probe for these: never wire for them
            raise AttributeError(name)
        if self._built is None:
            with self._building:
                if self._built is None:
                    from backend.bootstrap import build

                    self._built = build(self.settings)  # its clients are made on first use
        return getattr(self._built, name)


def wire(container: Any, credentials: Any) -> _Wired:
    """The bolt app behind its Lambda adapter, with our lazy runner (:mod:`bot.lazy`); local
    stacks that share a container with other functions wire the bot with this too."""
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler

    from backend.adapters.aws import Lazy
    from bot.app import create_app
    from bot.lazy import SignedLazyRunner

    slack_handler = SlackRequestHandler(create_app(container, credentials))
    # The runner's claims are records in the store: reached when a lazy listener runs, not before.
    records = Lazy(lambda: container.store)
    runner = SignedLazyRunner(
        slack_handler.logger, lazy_key(credentials.signing_secret), records, region=container.settings.aws_region,
        clock=lambda: container.clock(),  # read when a lazy listener runs, not at wiring
    )
    slack_handler.app.listener_runner.lazy_listener_runner = runner
    return _Wired(slack_handler, credentials.signing_secret, runner)


def _preload() -> None:
    """Import what the first signed request wires, without wiring it: no secret read, no client
    made, so a SnapStart snapshot holds code only and its restores still refuse unsigned requests
    before anything is fetched."""
    import random

    import slack_bolt.adapter.aws_lambda  # noqa: F401

    import backend.adapters.aws  # botocore's session and client code: the secret's read
    import backend.adapters.slack.secrets
    import backend.bootstrap  # noqa: F401
    import bot.app  # noqa: F401

    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]  # only in Lambda's runtimes
    except ImportError:  # not a Lambda runtime (tests, local mode)
        return
    # Every environment restored from one snapshot would share the random module's state.
    register_after_restore(random.seed)


def _refuse_unconfigured(problem: str) -> None:
    from aws_lambda_powertools import Logger

    Logger(service="trainbot", child=True).error("request refused (503): not configured", extra={"reason": problem})
    _count("BotNotConfigured")


def _count(name: str) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from backend.entrypoints.emf import trainbot_metrics

    metrics = trainbot_metrics()
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()


def _log_refusal(why: str) -> None:
    from aws_lambda_powertools import Logger

    # The reason only: never the body or headers an unauthenticated caller chose.
    Logger(service="trainbot", child=True).info("request refused (401)", extra={"reason": why})


def reset() -> None:
    """Forget the wiring, as a new cold start would (tests and local mode change the env)."""
    global _wired, _container
    _wired = None
    _container = None


# Lambda sets AWS_LAMBDA_INITIALIZATION_TYPE; "snap-start" while it initializes a version to
# snapshot. The imports then cost nothing at a restore; on-demand they stay on the first signed
# request, so an unsigned one is refused at the cost of this module only.
if os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
    _preload()
