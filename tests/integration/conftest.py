"""Fixtures integration tests share: the jobs table on moto's server (``aws``) and a job spec
file (``spec``), defined with the CLI tests, and a Slack Web API stand-in (``slack``)."""

from collections.abc import Iterator

import pytest

from infra.local.standins.slack import SlackStandIn
from tests.integration.test_cli import aws, spec

__all__ = ["aws", "slack", "spec"]


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(team_id="T1") as standin:
        yield standin
