"""The bot's Lambda Function URL, on 127.0.0.1: each HTTP request becomes a payload-format-2.0
event for the handler `template.yaml` declares for ``BotFunction`` (signature checks and all),
and the handler's answer becomes the HTTP response, as the Function URL does on AWS."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from infra.local.standins.lambda_invoke import lambda_context
from infra.local.standins.serving import LocalServer
from infra.local.standins.slack_signing import lambda_url_event

logger = logging.getLogger("trainbot.local")


class BotEndpoint:
    def __init__(self, handler: Callable[[dict, Any], Any], function_name: str, port: int = 0) -> None:
        self._handler = handler
        self._function_name = function_name
        self._server = LocalServer(_make_handler(self), port=port, name="bot-endpoint")

    def start(self) -> str:
        self._server.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    def invoke(self, body: str, headers: dict[str, str], path: str) -> dict[str, Any]:
        event = lambda_url_event(body, headers, path=path)
        try:
            answer = self._handler(event, lambda_context(self._function_name))
        except Exception:
            logger.exception("the bot handler failed")
            return {"statusCode": 502, "headers": {"content-type": "application/json"}, "body": json.dumps({"message": "Internal Server Error"})}
        return answer or {"statusCode": 200, "body": ""}


def _make_handler(endpoint: BotEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8")
            headers = {k: v for k, v in self.headers.items()}
            answer = endpoint.invoke(body, headers, self.path.split("?", 1)[0])
            payload = answer.get("body") or ""
            data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
            self.send_response(int(answer.get("statusCode", 200)))
            for name, value in (answer.get("headers") or {}).items():
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value if isinstance(value, str) else ",".join(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
