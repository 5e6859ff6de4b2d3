"""Bolt's lazy listeners on Lambda, made safe to deliver late, twice, or to fail.

bolt runs a lazy listener by invoking this same function again (``InvocationType=Event``) with
the Slack request and ``x-slack-bolt-lazy-only``; :class:`SignedLazyRunner` replaces bolt's
``LambdaLazyListenerRunner`` so that:

- each self-invocation carries our HMAC (:func:`bot.authenticity.sign_lazy`): the handler
  accepts it by that, however late Lambda delivers it, and refuses a forged one;
- the work runs once per Slack request and lazy function: a conditional put of a
  ``lazy#<key>`` record (with a TTL) claims it, the key being the hash of the request body,
  which Slack makes unique per request (trigger_id, action_ts) and which its retries and any
  replay repeat. A claim is released when the work fails, so Lambda's own retry can redo it,
  and is marked done when it ends. A run Lambda kills (its timeout) can release nothing: its
  claim is a lease (:data:`CLAIM_LEASE`, past the function's timeout), which Lambda's retry,
  a minute after the failure, takes over (a lease still running, or a claim done, is skipped);
- a failure is kept (bolt would only log one line) and the handler raises it, so Lambda's
  retries, the dead-letter queue and the BotErrors alarm see it;
- a request whose ack failed (the app's error handler answered the user that it did not work)
  starts no lazy work: bolt would start it anyway, and it would act, or answer, a second time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger
from slack_bolt.adapter.aws_lambda.lazy_listener_runner import LambdaLazyListenerRunner
from slack_bolt.kwargs_injection import build_required_kwargs
from slack_bolt.request import BoltRequest
from slack_bolt.util.utils import get_arg_names_of_callable

from backend.domain.times import format_utc, parse_utc, utcnow
from backend.errors import StoreUnavailable
from bot.authenticity import sign_lazy
from bot.listeners.errors import ACK_FAILED

logger = Logger(service="trainbot", child=True)

LAZY_RECORD_KIND = "lazy"
CLAIM_TTL_SECONDS = 2 * 60 * 60  # past Lambda's one-hour event age and Slack's retries
# How long a claim is held for the run that took it: past the bot function's Timeout (60 s in
# template.yaml), after which that run is dead, and short of Lambda's first retry of a failed
# asynchronous invocation (a minute after the failure, so at least Timeout + 60 s after the
# start), which takes the claim over.
CLAIM_LEASE = timedelta(seconds=90)


class LazyListenerFailed(Exception):
    """A lazy listener raised: the invocation fails so Lambda retries it and alarms count it."""


def request_key(body: str) -> str:
    """The idempotency key of a Slack request: its body's hash (a retry or replay repeats the
    body; two distinct Slack requests never share one: each carries its trigger_id or action_ts)."""
    return hashlib.sha256(body.encode()).hexdigest()[:40]


class SignedLazyRunner(LambdaLazyListenerRunner):
    """bolt's Lambda lazy runner, signing its self-invocations and running each once."""

    def __init__(
        self, logger_: Any, key: bytes, records: Any, lambda_client: Any = None, *, region: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(logger_, lambda_client)
        self._region = region
        self._key = key
        self._records = records
        self._clock = clock
        self._local = threading.local()

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        if request.context.get(ACK_FAILED):
            # bolt starts lazy functions even after the ack raised; the error handler answered
            # that it failed, so the work is not done (nor answered again) behind that answer.
            logger.info("ack failed: its lazy work is not started", extra={"function": request.lazy_function_name})
            return
        if self.lambda_client is None:  # bolt's default, but from the shared session
            from backend.adapters.aws import aws_client

            # Within the ack: a failed Invoke is retried once or twice, never for long.
            self.lambda_client = aws_client("lambda", region=self._region, max_attempts=3)
        event: dict[str, Any] = dict(request.context["lambda_request"])
        event["headers"] = dict(
            event["headers"],
            **{
                "x-slack-bolt-lazy-only": "1",
                "x-slack-bolt-lazy-function-name": str(request.lazy_function_name),
            },
        )
        event["method"] = "NONE"
        sign_lazy(event, self._key)
        import json

        self.lambda_client.invoke(
            FunctionName=request.context["aws_lambda_invoked_function_arn"], InvocationType="Event", Payload=json.dumps(event)
        )

    def run(self, function: Callable[..., None], request: BoltRequest) -> None:
        claim = f"{request_key(request.raw_body)}:{request.lazy_function_name}"
        if not self._claim(claim):
            logger.info("lazy work already done or running for this request: skipped", extra={"claim": claim})
            return
        kwargs = build_required_kwargs(
            logger=self.logger,
            required_arg_names=get_arg_names_of_callable(function),
            request=request,
            response=None,
            this_func=function,
        )
        try:
            function(**kwargs)
        except Exception as exc:
            self._records.delete_record(LAZY_RECORD_KIND, claim)
            self._local.failure = exc
            return
        try:
            self._records.put_record(LAZY_RECORD_KIND, claim, {"ExpiresAt": _expiry(), "Done": 1})
        except StoreUnavailable:  # done and answered: a late duplicate may run it once more
            logger.warning("lazy work done but not marked so", extra={"claim": claim})

    def _claim(self, claim: str) -> bool:
        """Take the request's claim: a new one, or one whose run was killed (its lease ran out
        and it was never done); False when it is done or a live run holds it."""
        now = self._clock()
        held = {"ExpiresAt": _expiry(), "Until": format_utc(now + CLAIM_LEASE)}
        if self._records.put_record(LAZY_RECORD_KIND, claim, held, only_if_absent=True):
            return True
        current = self._records.get_record(LAZY_RECORD_KIND, claim)
        if current is None:  # released meanwhile by a run that failed: this delivery redoes it
            return bool(self._records.put_record(LAZY_RECORD_KIND, claim, held, only_if_absent=True))
        if current.get("Done") or "Until" not in current or parse_utc(str(current["Until"])) > now:
            return False
        logger.warning("lazy work of a killed run taken over", extra={"claim": claim})
        return bool(self._records.put_record(LAZY_RECORD_KIND, claim, held, only_if={"Until": current["Until"]}))

    def take_failure(self) -> BaseException | None:
        """The exception the last lazy run in this thread raised (then forgotten), if any."""
        failure = getattr(self._local, "failure", None)
        self._local.failure = None
        return failure


def _expiry() -> int:
    # Wall-clock seconds, not the injected clock: DynamoDB's TTL reads this attribute.
    return int(time.time()) + CLAIM_TTL_SECONDS
