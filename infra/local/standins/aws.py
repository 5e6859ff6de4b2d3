"""The AWS stand-in for local mode: moto's server on 127.0.0.1, one request at a time.

moto answers DynamoDB, SNS (and whatever else the template may grow to need) over HTTP, so the
very boto3 clients Trainbot builds reach it through boto3's own ``AWS_ENDPOINT_URL_<SERVICE>``
variables. It is served by a *single-threaded* werkzeug server on purpose: moto's backends
are not atomic across threads (two conditional writes racing in two threads can both pass),
whereas DynamoDB applies each request atomically; one request at a time restores that.

    with MotoServer() as aws:
        os.environ.update(aws.endpoint_env())
"""

from __future__ import annotations

import threading
from typing import Any

# The services local mode points at moto. boto3 reads AWS_ENDPOINT_URL_<service id>, the id
# upper-cased with spaces as underscores ("Secrets Manager" -> SECRETS_MANAGER).
SERVICES = ("DYNAMODB", "DYNAMODB_STREAMS", "SNS", "SQS", "SECRETS_MANAGER", "CLOUDWATCH_LOGS")

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoServer:
    """moto's server app behind a single-threaded werkzeug server on 127.0.0.1."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._host = host
        self._port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        from moto.server import DomainDispatcherApplication, create_backend_app
        from werkzeug.serving import WSGIRequestHandler, make_server

        from infra.local.standins import moto_fast

        moto_fast.install()  # the same answers, without moto's per-attribute shape walk

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                pass  # one line per request would drown local mode's own log

        app = DomainDispatcherApplication(create_backend_app)
        # threaded=False: each request runs to its end before the next starts (atomic writes).
        self._server = make_server(self._host, self._port, app, threaded=False, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="moto-server", daemon=True)
        self._thread.start()
        self.reset()
        return self.url

    def reset(self) -> None:
        """Forget every resource (moto's backends live in this process; a new stack starts
        empty, and a stopped one leaves nothing behind for the next)."""
        import urllib.request

        request = urllib.request.Request(self.url + "/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        if self._server is not None:
            try:
                self.reset()
            except OSError:
                pass  # stopping anyway
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the moto server is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def endpoint_env(self) -> dict[str, str]:
        """The environment that points boto3 at this server, with fake credentials."""
        return {**FAKE_CREDENTIALS, **{f"AWS_ENDPOINT_URL_{name}": self.url for name in SERVICES}}
