"""Every held job reaches the admins (issue 22): the approval card goes out through the outbox,
whichever way the job came in. The CLI (no Slack token: it leaves the card to the monitor's
drain), a card Slack refused at first, a delivery retried after a crash, two dispatchers at
once, a held sweep. DynamoDB on moto's server, the Slack stand-in reached by the real WebClient.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta

import pytest

from backend.bootstrap import Container, build
from backend.config import Settings
from backend.domain import notice
from backend.domain.times import utcnow
from tests.integration.test_cli import _mine, cli

ADMINS = ("boss", "chief")


@pytest.fixture
def held(aws, monkeypatch):
    """Everything on ml.g5.xlarge needs an admin; two admins."""
    monkeypatch.setenv("TRAINBOT_APPROVAL_INSTANCE_TYPES", "ml.g5.xlarge")
    monkeypatch.setenv("TRAINBOT_ADMIN_USERS", ",".join(ADMINS))
    return aws


def deployed(slack, *, later: timedelta = timedelta(0)) -> Container:
    """The deployment's monitor: its Slack notifiers (token, stand-in), its clock ``later``."""
    env = {**os.environ, "SLACK_BOT_TOKEN": "xoxb-monitor", "SLACK_SIGNING_SECRET": "s3cret", "SLACK_API_URL": slack.api_url, "AWS_REGION": "us-east-1"}
    return build(Settings.from_env(env), clock=lambda: utcnow() + later)


def cards(slack, admin: str) -> list[dict]:
    return [m for m in slack.messages(admin) if "Approval needed" in (m.get("text") or "")]


def test_a_held_job_submitted_from_the_cli_reaches_every_admin_through_the_monitors_drain(held, spec, slack):
    code, out, err = cli("submit", "--spec", spec())
    assert code == 0, err
    [job] = _mine(held)
    assert job.is_held and all(cards(slack, admin) == [] for admin in ADMINS)  # the CLI has no Slack

    deployed(slack).monitor.sweep()

    for admin in ADMINS:
        [card] = cards(slack, admin)
        blob = json.dumps(card["blocks"], ensure_ascii=False)
        assert job.job_id in blob and "ml.g5.xlarge needs approval" in blob and "≤ 1.00 instance-hours" in blob
    deployed(slack, later=timedelta(hours=2)).monitor.sweep()  # nothing left to tell
    assert all(len(cards(slack, admin)) == 1 for admin in ADMINS)
    assert held.outbox_job_ids(10, due_by=utcnow() + timedelta(days=2)) == []


def test_an_approval_card_slack_refuses_at_first_is_sent_by_the_next_delivery(held, spec, slack):
    cli("submit", "--spec", spec())
    [job] = _mine(held)
    slack.fail_next("chat.postMessage", error="internal_error")

    deployed(slack).monitor.sweep()
    assert cards(slack, "boss") == []  # refused: the change stays in the outbox

    deployed(slack, later=timedelta(minutes=10)).monitor.sweep()
    assert [len(cards(slack, admin)) for admin in ADMINS] == [1, 1]
    assert held.get(job.job_id).delivered.get("slack") == job.last_seq


class Crash(BaseException):
    """The Lambda dies after its sends, before it records them."""


def test_a_delivery_retried_after_a_crash_sends_no_admin_the_card_twice(held, spec, slack, monkeypatch):
    cli("submit", "--spec", spec())
    first = deployed(slack)

    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(first.store, "finish_delivery", crash)
    with pytest.raises(Crash):
        first.dispatcher.drain()
    assert [len(cards(slack, admin)) for admin in ADMINS] == [1, 1]

    # Its delivery lease runs out; the next sweep delivers the change again.
    deployed(slack, later=timedelta(minutes=10)).monitor.sweep()

    assert [len(cards(slack, admin)) for admin in ADMINS] == [1, 1]


def test_two_dispatchers_draining_at_once_send_each_admin_one_card(held, spec, slack):
    cli("submit", "--spec", spec())
    monitors = [deployed(slack), deployed(slack)]
    start = threading.Barrier(2)

    def drain(container: Container) -> None:
        start.wait()
        container.dispatcher.drain()

    threads = [threading.Thread(target=drain, args=(m,)) for m in monitors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deployed(slack, later=timedelta(minutes=10)).monitor.sweep()  # whatever one of them left

    assert [len(cards(slack, admin)) for admin in ADMINS] == [1, 1]


def test_a_held_50_job_sweep_sends_one_card_for_the_sweep_and_only_its_card_job_is_urgent(held, spec, slack):
    lrs = ",".join(f"{n}e-5" for n in range(1, 11))
    code, out, err = cli("sweep", "--spec", spec(), "--hp", f"lr={lrs}", "--hp", "batch=8,16,32,64,128", "--yes")
    assert code == 0, err
    jobs = _mine(held)
    assert len(jobs) == 50 and all(job.is_held for job in jobs)
    targets = ("sns", "slack", "slack-card")
    assert sum(notice.is_urgent(job, targets) for job in jobs) == 1

    deployed(slack).monitor.sweep()

    for admin in ADMINS:
        [card] = cards(slack, admin)
        blob = json.dumps(card["blocks"], ensure_ascii=False)
        assert "every job of sweep" in blob and "50 jobs" in blob and "≤ 50.0 instance-hours over 50 jobs" in blob
    assert len(slack.calls_to("chat.postMessage")) == len(ADMINS)


def test_a_sweep_job_held_alone_on_its_retry_asks_the_admins_with_its_own_card(aws, spec, slack, monkeypatch):
    """A sweep job whose automatic retry goes past the budget is held on its own (as
    CostGuard.readmit holds it): the sweep's card (its first job's) was never needed or is long
    decided, so this job carries its own card, for itself alone. (The simulator found the job
    waiting for ever with no admin asked.)"""
    from backend.domain.approval import ApprovalState
    from backend.domain.model import Approval
    from backend.domain.status import JobStatus

    monkeypatch.setenv("TRAINBOT_ADMIN_USERS", ",".join(ADMINS))
    code, out, err = cli("sweep", "--spec", spec(), "--hp", "lr=1e-5,2e-5", "--yes")
    assert code == 0, err
    first, second = sorted(_mine(aws), key=lambda job: job.client_token or "")
    held = Approval(state=ApprovalState.PENDING, reasons=["over the weekly budget for another attempt"], alone=True)
    aws.set_notify_targets(deployed(slack).store.notify_targets)  # written as the deployed monitor writes it
    moved = aws.transition(second, JobStatus.RETRYING, at=utcnow(), reason="over the weekly budget for another attempt", approval=held)
    assert notice.carries_approval_card(moved.job) and not notice.carries_approval_card(first)

    deployed(slack, later=timedelta(minutes=10)).monitor.sweep()  # once its writer's lease may be taken over

    for admin in ADMINS:
        [card] = cards(slack, admin)
        blob = json.dumps(card["blocks"], ensure_ascii=False)
        assert second.job_id in blob and "applies to this job only" in blob and "every job of sweep" not in blob
