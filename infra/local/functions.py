"""Drive the Lambda functions `template.yaml` declares as AWS drives them, on one machine.

Every ``AWS::Serverless::Function`` is imported by its ``Handler`` string and invoked with a
Lambda-shaped context. Its ``Events`` decide how it is driven:

- ``Schedule`` (``rate(…)``): a thread invoking it with EventBridge's "Scheduled Event", every
  few seconds instead of minutes (the interval is configurable per function);
- ``EventBridgeRule`` (``Pattern``): every event put on the local bus (the SageMaker stand-in's
  state changes) that matches the pattern is delivered to it, one invocation per event,
  asynchronously as EventBridge invokes a function: several at once (``event_concurrency``,
  within the function's reserved concurrency), so one slow invocation (a reply waiting for
  Slack's pace) never holds up the events behind it; in no promised order, as on AWS;
- ``DynamoDB`` streams on a template table: a poller reading the table's stream through boto3
  (moto) and invoking it with batches of records, as Lambda's event source mapping does;
- anything else (SQS, Kinesis, …) is reported as not driven locally, never silently dropped.

The Function URL (the bot) is served by local mode itself, over HTTP.
"""

from __future__ import annotations

import importlib
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.local.standins.lambda_invoke import lambda_context

logger = logging.getLogger("trainbot.local")

REGION = "us-east-1"
ACCOUNT = "123456789012"
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class FunctionSpec:
    """One function resource of the template: its id, handler and event sources."""

    logical_id: str
    handler: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions
    timeout: float = 3.0  # Timeout (its own, else the template's Globals; Lambda's default 3 s)

    @property
    def name(self) -> str:
        return f"trainbot-local-{self.logical_id.removesuffix('Function').lower()}"


def _reserved(value: Any, template: dict[str, Any]) -> Any:
    """A function's reserved concurrency: a number, or the template's optional form
    ``!If [Condition, !Ref Parameter, !Ref AWS::NoValue]`` (the parameter's value when above 0,
    which is what its condition tests; else none)."""
    if isinstance(value, dict) and isinstance(value.get("Fn::If"), list) and len(value["Fn::If"]) == 3:
        chosen = value["Fn::If"][1]
        if isinstance(chosen, dict) and set(chosen) == {"Ref"}:
            number = str((template.get("Parameters", {}).get(chosen["Ref"]) or {}).get("Default", ""))
            return number if number.isdigit() and int(number) > 0 else None
    return value


def function_specs(template: dict[str, Any]) -> list[FunctionSpec]:
    specs = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        reserved = _reserved(props.get("ReservedConcurrentExecutions"), template)
        timeout = props.get("Timeout", template.get("Globals", {}).get("Function", {}).get("Timeout", 3))
        specs.append(
            FunctionSpec(
                logical_id,
                props["Handler"],
                dict(props.get("Events") or {}),
                int(reserved) if isinstance(reserved, int | str) and str(reserved).isdigit() else None,
                float(timeout) if isinstance(timeout, int | float | str) and str(timeout).isdigit() else 3.0,
            )
        )
    return specs


def resolve_handler(dotted: str) -> Callable[[dict, Any], Any]:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of ``rate(N unit)``; None for cron expressions (not driven)."""
    match = _RATE.match(expression.strip())
    if not match:
        return None
    unit = match[2].removesuffix("s")
    return float(match[1]) * _UNIT_SECONDS[unit]


def resolve(value: Any, refs: dict[str, Any], template: dict[str, Any]) -> Any:
    """``value`` with ``Ref`` / ``Fn::Sub`` resolved the way a local deployment would: resources
    from ``refs``, parameters from their defaults (unresolvable ones become "")."""
    if isinstance(value, list):
        return [resolve(v, refs, template) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Ref"}:
        name = value["Ref"]
        if name in refs:
            return refs[name]
        return str((template.get("Parameters", {}).get(name) or {}).get("Default", ""))
    if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        return re.sub(r"\$\{([^}]+)\}", lambda m: str(resolve({"Ref": m[1]}, refs, template)), value["Fn::Sub"])
    return {k: resolve(v, refs, template) for k, v in value.items()}


def _value_matches(expected: Any, value: Any, present: bool) -> bool:
    """One entry of a pattern's value list: a literal, or a content filter."""
    if not isinstance(expected, dict):
        return present and value == expected
    if "exists" in expected:
        return present is bool(expected["exists"])
    if not present:
        return False
    text = value if isinstance(value, str) else None
    if "prefix" in expected:
        return text is not None and text.startswith(str(expected["prefix"]))
    if "suffix" in expected:
        return text is not None and text.endswith(str(expected["suffix"]))
    if "equals-ignore-case" in expected:
        return text is not None and text.lower() == str(expected["equals-ignore-case"]).lower()
    if "anything-but" in expected:
        excluded = expected["anything-but"]
        excluded = excluded if isinstance(excluded, list) else [excluded]
        return value not in excluded
    logger.warning("event pattern filter %s is not supported locally; it matches nothing", expected)
    return False


def pattern_matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge pattern matching (literals, prefix/suffix/anything-but/exists/
    equals-ignore-case filters, nested objects): every key of the pattern must match."""
    for key, expected in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not pattern_matches(expected, value):
                return False
        elif isinstance(expected, list):
            values = value if isinstance(value, list) and value else [value]
            if not any(_value_matches(e, v, present) for e in expected for v in values):
                return False
        elif value != expected:
            return False
    return True


def scheduled_event(rule: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }


class Function:
    """A handler and the failures of its invocations (a handler error is logged, counted and
    the next invocation goes ahead, as with Lambda).

    ``ReservedConcurrentExecutions`` is honoured as Lambda's asynchronous invocations see it:
    an invocation that finds the function at its limit waits (Lambda keeps a throttled event
    in its queue and retries it) until a running one ends. ``running``/``waiting`` and their
    maxima let tests see how many ran, and waited, at once."""

    def __init__(self, spec: FunctionSpec) -> None:
        self.spec = spec
        self.handler = resolve_handler(spec.handler)
        self.invocations = 0
        self.errors = 0
        self.running = 0
        self.max_running = 0
        self.waiting = 0
        self.max_waiting = 0
        self._lock = threading.Condition()

    def invoke(self, event: dict[str, Any], context: Any = None) -> Any:
        limit = self.spec.reserved_concurrency
        with self._lock:
            self.invocations += 1
            self.waiting += 1
            self.max_waiting = max(self.max_waiting, self.waiting)
            self._lock.wait_for(lambda: limit is None or self.running < limit)
            self.waiting -= 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            # The time left counts down from the function's own Timeout, as Lambda's does: the
            # monitor's sweep describes only while more than its drain's reserve is left.
            return self.handler(event, lambda_context(self.spec.name, timeout_seconds=self.spec.timeout))
        except Exception:
            with self._lock:
                self.errors += 1
            logger.exception("%s failed on a %s event", self.spec.logical_id, event.get("detail-type", "stream"))
            return None
        finally:
            with self._lock:
                self.running -= 1
                self._lock.notify_all()


class FunctionDriver:
    """Drives every function of the template from its event sources, in threads."""

    def __init__(
        self,
        template: dict[str, Any],
        *,
        schedule_seconds: Callable[[FunctionSpec, float], float],
        table_names: dict[str, str],
        refs: dict[str, Any] | None = None,
        event_source: Callable[[], list[dict[str, Any]]] | None = None,
        event_poll_seconds: float = 0.25,
        skip: Iterable[str] = (),
        event_concurrency: int = 8,
    ) -> None:
        self._template = template
        self._schedule_seconds = schedule_seconds
        self._table_names = table_names
        self._refs = {**table_names, **(refs or {})}
        self._event_source = event_source
        self._event_poll = event_poll_seconds
        self._skip = set(skip)
        self._event_concurrency = max(1, event_concurrency)
        self._deliveries: queue.Queue[tuple[Function, dict[str, Any]] | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.functions: dict[str, Function] = {}
        self.rules: list[tuple[Function, dict[str, Any]]] = []
        self.not_driven: list[str] = []
        self.schedules: dict[str, float] = {}

    def start(self) -> None:
        for spec in function_specs(self._template):
            if spec.logical_id in self._skip:
                continue
            function = Function(spec)
            self.functions[spec.logical_id] = function
            for event_name, event in spec.events.items():
                kind, props = event.get("Type"), event.get("Properties") or {}
                if kind == "Schedule":
                    seconds = rate_seconds(str(props.get("Schedule", "")))
                    if seconds is None:
                        self.not_driven.append(f"{spec.logical_id}.{event_name} ({props.get('Schedule')})")
                        continue
                    every = self._schedule_seconds(spec, seconds)
                    self.schedules[f"{spec.logical_id}.{event_name}"] = every
                    self._spawn(f"{spec.logical_id}-{event_name}", self._every, function, every, f"{spec.name}-{event_name}")
                elif kind in ("EventBridgeRule", "CloudWatchEvent"):
                    self.rules.append((function, resolve(props.get("Pattern") or {}, self._refs, self._template)))
                elif kind == "DynamoDB":
                    table = self._stream_table(props.get("Stream"))
                    if table is None:
                        self.not_driven.append(f"{spec.logical_id}.{event_name} (stream of an unknown table)")
                        continue
                    self._spawn(f"{spec.logical_id}-{event_name}", self._stream, function, table, props)
                else:
                    self.not_driven.append(f"{spec.logical_id}.{event_name} ({kind})")
        if self.rules and self._event_source is not None:
            self._spawn("event-bus", self._bus)
        if self.rules:
            for n in range(self._event_concurrency):
                worker = threading.Thread(target=self._deliver, name=f"local-event-{n}", daemon=True)
                self._workers.append(worker)
                worker.start()
        for item in self.not_driven:
            logger.warning("not driven locally: %s", item)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        for _ in self._workers:
            self._deliveries.put(None)
        for worker in self._workers:
            worker.join(timeout)  # an invocation under way finishes; queued ones are dropped
        self._workers.clear()

    def put_events(self, events: Iterable[dict[str, Any]]) -> int:
        """Hand events to every function whose rule matches (one asynchronous invocation each,
        as EventBridge makes); returns how many invocations were queued."""
        delivered = 0
        for event in events:
            for function, pattern in self.rules:
                if self._stop.is_set():
                    return delivered
                if pattern_matches(pattern, event):
                    self._deliveries.put((function, event))
                    delivered += 1
        return delivered

    def _deliver(self) -> None:
        while True:
            item = self._deliveries.get()
            if item is None or self._stop.is_set():
                return
            function, event = item
            function.invoke(event)

    # --- threads ---------------------------------------------------------------------------

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"local-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _every(self, function: Function, seconds: float, rule: str) -> None:
        while not self._stop.wait(seconds):
            function.invoke(scheduled_event(rule))

    def _bus(self) -> None:
        while not self._stop.wait(self._event_poll):
            try:
                assert self._event_source is not None  # started only with a source
                events = self._event_source()
            except Exception:
                logger.exception("could not read events")
                continue
            self.put_events(events)

    def _stream_table(self, stream: Any) -> str | None:
        # !GetAtt JobsTable.StreamArn -> {"Fn::GetAtt": ["JobsTable", "StreamArn"]}
        if isinstance(stream, dict) and "Fn::GetAtt" in stream:
            logical = stream["Fn::GetAtt"][0]
            return self._table_names.get(logical)
        return None

    def _stream(self, function: Function, table: str, props: dict[str, Any]) -> None:
        from backend.adapters.aws import aws_client

        dynamodb = aws_client("dynamodb", region=REGION)
        streams = aws_client("dynamodbstreams", region=REGION)
        batch = int(props.get("BatchSize", 100))
        position = str(props.get("StartingPosition", "LATEST"))
        arn = dynamodb.describe_table(TableName=table)["Table"].get("LatestStreamArn")
        if not arn:
            logger.warning("table %s has no stream; %s is not driven", table, function.spec.logical_id)
            return
        iterators: dict[str, str | None] = {}
        while not self._stop.wait(0.5):
            try:
                for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"].get("Shards", []):
                    shard_id = shard["ShardId"]
                    if shard_id not in iterators:
                        iterators[shard_id] = streams.get_shard_iterator(
                            StreamArn=arn, ShardId=shard_id, ShardIteratorType=position
                        )["ShardIterator"]
                    iterator = iterators[shard_id]
                    if iterator is None:
                        continue
                    answer = streams.get_records(ShardIterator=iterator, Limit=batch)
                    iterators[shard_id] = answer.get("NextShardIterator")
                    # As Lambda delivers them: JSON, times as epoch seconds.
                    records = json.loads(json.dumps(answer.get("Records") or [], default=_epoch))
                    if records:
                        for record in records:
                            record.setdefault("eventSource", "aws:dynamodb")
                            record.setdefault("awsRegion", REGION)
                            record["eventSourceARN"] = arn
                        function.invoke({"Records": records})
            except Exception:
                logger.exception("stream poll failed for %s", function.spec.logical_id)


def _epoch(value: Any) -> Any:
    return value.timestamp() if isinstance(value, datetime) else str(value)
