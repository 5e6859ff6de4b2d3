"""A send to Slack or SNS cannot outlast the outbox's send bound (backend.domain.notice.SEND_BOUND):
the dispatcher lets nobody take over a delivery lease until that long after it ran out, which
is what keeps a slow send from being made twice (issue 21; the simulator's "slow" sends rely on
it). Worked out from the clients' own settings, so a longer timeout or more retries fails here."""

from __future__ import annotations

from backend.adapters.aws import aws_client
from backend.adapters.slack import client as slack_client
from backend.adapters.sns import SNS_MAX_ATTEMPTS
from backend.domain.notice import DELIVERY_LEASE, SEND_BOUND

# botocore's standard retry mode: exponential backoff with jitter, each wait at most 20 s
# (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
STANDARD_MODE_MAX_BACKOFF = 20.0


def test_the_sns_clients_worst_case_publish_fits_in_the_send_bound():
    config = aws_client("sns", region="us-east-1", max_attempts=SNS_MAX_ATTEMPTS).meta.config
    attempts = config.retries.get("total_max_attempts") or config.retries["max_attempts"]
    worst = attempts * (config.connect_timeout + config.read_timeout) + (attempts - 1) * STANDARD_MODE_MAX_BACKOFF
    assert worst < SEND_BOUND.total_seconds(), f"an SNS publish may take {worst:.0f} s"


def test_a_slack_notification_never_waits_longer_than_the_send_bound():
    retries, max_wait, timeout = slack_client._POLICY["notify"]
    worst = (retries + 1) * timeout + retries * max_wait
    assert worst < SEND_BOUND.total_seconds(), f"a Slack post may take {worst:.0f} s"
    assert SEND_BOUND > DELIVERY_LEASE
