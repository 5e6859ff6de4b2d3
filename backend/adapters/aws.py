"""boto3 clients, configured once: standard retry mode, bounded timeouts.

Endpoints are never set here: boto3 reads ``AWS_ENDPOINT_URL_<SERVICE>`` itself, which is how
tests and local mode point Trainbot at moto and the SageMaker stand-in.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def aws_client(service: str, *, region: str, max_attempts: int = 4, read_timeout: float = 10.0, **config: Any) -> Any:
    """A boto3 client for ``service`` with standard retries (jittered, throttling-aware)."""
    return boto3.session.Session().client(
        service,
        region_name=region,
        config=Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=5,
            read_timeout=read_timeout,
            max_pool_connections=32,
            **config,
        ),
    )
