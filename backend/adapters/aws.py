"""AWS clients, configured once: standard retry mode, bounded timeouts, one shared session.

Endpoints are never set here: botocore reads ``AWS_ENDPOINT_URL_<SERVICE>`` itself, which is how
tests and local mode point Trainbot at moto and the SageMaker stand-in.

Every client comes from one botocore session: a session loads and parses botocore's endpoint and
partition data, its credentials and config files once, and a client of its own would make each
client pay for that again at a cold start. Sessions are not thread-safe, so clients are made
under a lock (the clients themselves are).

The clients are botocore's, which boto3's are: ``boto3.client`` is a botocore client made by a
botocore session (boto3's session adds its resources, its S3 transfer methods and its user
agent, none of which Trainbot uses). Importing boto3 costs a cold start about 20 ms of CPU
beyond botocore (its session, s3transfer, multiprocessing), so nothing on a Lambda path imports
it (tests/unit/test_import_boundaries.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.config import Config

_lock = threading.Lock()
_session: botocore.session.Session | None = None


def aws_client(service: str, *, region: str, max_attempts: int = 4, read_timeout: float = 10.0, **config: Any) -> Any:
    """A client for ``service`` with standard retries (jittered, throttling-aware)."""
    global _session
    settings = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=5,
        read_timeout=read_timeout,
        max_pool_connections=32,
        **config,
    )
    with _lock:
        if _session is None:
            _session = botocore.session.get_session()
        return _session.create_client(service, region_name=region, config=settings)


class Lazy:
    """A client made by ``make`` on its first use, once, whichever thread asks first."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._client: Any = None
        self._making = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        client = self._client
        if client is None:
            with self._making:
                if self._client is None:
                    self._client = self._make()
                client = self._client
        return getattr(client, name)


class LazyClient(Lazy):
    """A client made by :func:`aws_client` on its first use. Each costs a cold start tens of
    milliseconds of CPU (its service model is read and parsed), and most invocations use one
    or two of those the composition root wires: a bot ack touches none, an idle launcher tick
    only the table."""

    def __init__(self, service: str, **options: Any) -> None:
        super().__init__(lambda: aws_client(service, **options))
        self._service = service

    def __repr__(self) -> str:
        return f"LazyClient({self._service!r}, made={self._client is not None})"
