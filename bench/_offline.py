"""The environment every benchmark runs in: fake AWS credentials, a fixed region, quiet
Powertools, and no ``AWS_ENDPOINT_URL_*`` left over that could point at anything real
(each benchmark starts its own stand-ins)."""

from __future__ import annotations

import os


def offline_aws_env(**extra: str) -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            **extra,
        }
    )
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
