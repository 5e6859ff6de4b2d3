"""A local stand-in for the Lambda Invoke API, so lazy listeners re-enter the bot as on AWS.

slack-bolt's ``LambdaLazyListenerRunner`` runs a lazy listener by calling boto3
``lambda.invoke(FunctionName=<this function's ARN>, InvocationType="Event", Payload=event)``.
Pointing boto3 at this server (``AWS_ENDPOINT_URL_LAMBDA``) makes that call land here:
``POST /2015-03-31/functions/<name or ARN>/invocations`` runs the registered handler,
in a background thread with an immediate 202 for ``X-Amz-Invocation-Type: Event`` (as Lambda
does), or synchronously with the result as the body otherwise. Standard library only.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from infra.local.standins.serving import LocalServer

__all__ = ["LambdaStandIn", "lambda_context"]

Handler = Callable[[dict[str, Any], Any], Any]
_PREFIX = "/2015-03-31/functions/"


def lambda_context(function_name: str, region: str = "us-east-1", account: str = "123456789012", *, timeout_seconds: float = 30.0) -> Any:
    """A context object with the attributes Lambda handlers (and bolt) read; the time left
    counts down from ``timeout_seconds`` (the function's Timeout) as the invocation runs."""
    deadline = time.monotonic() + timeout_seconds
    return SimpleNamespace(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=f"arn:aws:lambda:{region}:{account}:function:{function_name}",
        memory_limit_in_mb=512,
        aws_request_id=str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="local",
        get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)),
    )


class LambdaStandIn:
    """Serves the Invoke API on 127.0.0.1 for the functions registered with :meth:`add`."""

    def __init__(self, port: int = 0, *, max_concurrent: int | None = None) -> None:
        """``max_concurrent``: asynchronous invocations allowed to run at once; the others wait
        their turn, as Lambda keeps an Event invocation it cannot run yet (concurrency limit)
        in its queue and retries it. AWS's default account limit is 1,000; one process on a
        small machine, whose threads share one GIL and a one-request-at-a-time AWS stand-in,
        saturates far below that, so local mode sets its own (None: no limit)."""
        self._functions: dict[str, Handler] = {}
        self._lock = threading.Condition()
        self._running = 0
        self._slots = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
        self.max_running = 0  # asynchronous invocations that ran at once, at most
        self._started = 0
        self.invocations: list[dict[str, Any]] = []  # name, type, status, error
        self._server = LocalServer(_make_handler(self), port=port, name="lambda-standin")

    def add(self, name: str, handler: Handler) -> None:
        self._functions[name] = handler

    def start(self) -> str:
        self._server.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LambdaStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wait_idle()
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Block until no asynchronous invocation is running (TimeoutError otherwise)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._running == 0, timeout):
                raise TimeoutError(f"{self._running} invocations still running after {timeout}s")

    def errors(self) -> list[str]:
        with self._lock:
            return [i["error"] for i in self.invocations if i.get("error")]

    def _resolve(self, target: str) -> tuple[str, Handler] | None:
        name = target.rsplit(":function:", 1)[-1].split(":", 1)[0]
        handler = self._functions.get(name)
        return (name, handler) if handler else None

    def _run(self, name: str, handler: Handler, event: Any, kind: str) -> tuple[Any, str | None]:
        record: dict[str, Any] = {"name": name, "type": kind, "error": None}
        try:
            return handler(event, lambda_context(name)), None
        except Exception:
            record["error"] = traceback.format_exc()
            return None, record["error"]
        finally:
            with self._lock:
                self.invocations.append(record)

    def _invoke(self, target: str, kind: str, payload: bytes) -> tuple[int, dict[str, str], bytes, Callable[[], None] | None]:
        """The answer (status, headers, body) and what to start once it is sent, if anything."""
        found = self._resolve(target)
        if found is None:
            body = {"Type": "User", "message": f"Function not found: {target}"}
            return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, json.dumps(body).encode(), None
        name, handler = found
        event = json.loads(payload or b"{}")
        if kind == "Event":
            with self._lock:
                self._running += 1

            def background() -> None:
                if self._slots is not None:
                    self._slots.acquire()
                try:
                    with self._lock:
                        self._started += 1
                        self.max_running = max(self.max_running, self._started)
                    self._run(name, handler, event, kind)
                finally:
                    with self._lock:
                        self._started -= 1
                        self._running -= 1
                        self._lock.notify_all()
                    if self._slots is not None:
                        self._slots.release()

            # Started once the 202 is on the wire, as Lambda queues an Event invocation and
            # answers before running it: started earlier, the work (in this process, under the
            # GIL) would hold up the caller's answer, which on Lambda it never shares a CPU with.
            return 202, {}, b"", threading.Thread(target=background, daemon=True).start
        result, error = self._run(name, handler, event, kind)
        if error is not None:
            return 200, {"X-Amz-Function-Error": "Unhandled"}, json.dumps({"errorMessage": error}).encode(), None
        return 200, {}, json.dumps(result).encode(), None


def _make_handler(standin: LambdaStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            then: Callable[[], None] | None = None
            if not (path.startswith(_PREFIX) and path.endswith("/invocations")):
                status, headers, body = 404, dict[str, str](), b'{"message": "unknown path"}'
            else:
                target = unquote(path[len(_PREFIX) : -len("/invocations")])
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                status, headers, body, then = standin._invoke(target, kind, payload)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if then is not None:
                then()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
