"""Start on submit's trigger (backend.adapters.launch_trigger) through boto3 to the Lambda Invoke
stand-in: an asynchronous invocation of the launcher with the kick event, naming the job."""

from __future__ import annotations

import os
import threading

import pytest

from backend.adapters.aws import aws_client
from backend.adapters.launch_trigger import LambdaLaunchTrigger
from backend.errors import BackendUnavailable
from backend.services.kick import KICK_EVENT, is_kick, kicked_for
from infra.local.standins.lambda_invoke import LambdaStandIn


@pytest.fixture
def lam(monkeypatch):
    with LambdaStandIn() as standin:
        monkeypatch.setitem(os.environ, "AWS_ENDPOINT_URL_LAMBDA", standin.url)
        yield standin


def test_the_launcher_is_invoked_asynchronously_with_the_kick_naming_its_job(lam):
    events: list[dict] = []
    arrived = threading.Event()

    def launcher(event, context):
        events.append(event)
        arrived.set()

    lam.add("trainbot-launcher", launcher)
    trigger = LambdaLaunchTrigger(aws_client("lambda", region="us-east-1", max_attempts=1), "trainbot-launcher", KICK_EVENT)
    trigger.start_launcher("bert-1a2b3c")
    trigger.start_launcher()
    lam.wait_idle()

    # Each Event invocation runs on its own (Lambda does not keep them in order): in either order.
    assert sorted(events, key=lambda e: "jobId" in e) == [{"trainbot": "kick"}, {"trainbot": "kick", "jobId": "bert-1a2b3c"}]
    assert all(is_kick(e) for e in events) and {kicked_for(e) for e in events} == {"bert-1a2b3c", None}
    assert [i["type"] for i in lam.invocations] == ["Event", "Event"]


def test_a_launcher_lambda_cannot_find_is_backend_unavailable(lam):
    trigger = LambdaLaunchTrigger(aws_client("lambda", region="us-east-1", max_attempts=1), "no-such-function", KICK_EVENT)
    with pytest.raises(BackendUnavailable, match="no-such-function"):
        trigger.start_launcher("bert-1")


def test_a_kicked_run_with_nothing_due_waits_to_look_again_only_for_a_job_not_launched_yet(moto_aws, monkeypatch):
    """Through the template's launcher handler: the job the kick names was launched by an
    earlier run, so an empty queue read ends the run at once; a kick that names no job keeps
    the old caution (one more look a second later)."""
    import backend.entrypoints.launcher as entry
    from tests.harness import ALICE, Stack, job_request

    slept: list[float] = []
    monkeypatch.setattr(entry.time, "sleep", slept.append)
    stack = Stack()
    try:
        job = stack.jobs.submit(name="bert", job_args=job_request(), actor=ALICE).job
        stack.launch()  # the scheduled tick launches it
        assert stack.store.get(job.job_id).attempts

        report = stack.launcher_handler({"trainbot": "kick", "jobId": job.job_id}, stack.context)
        assert report["due"] == 0 and slept == []

        stack.launcher_handler({"trainbot": "kick"}, stack.context)
        assert slept == [entry.KICK_SETTLE_SECONDS]
    finally:
        stack.close()


def test_asynchronous_invocations_past_the_concurrency_limit_wait_their_turn_and_all_run(monkeypatch):
    """Local mode's Lambda queues Event invocations it cannot run yet, as Lambda does at its
    concurrency limit: every one is accepted (202) at once and runs, never more at a time."""
    gate = threading.Event()
    ran: list[int] = []
    with LambdaStandIn(max_concurrent=2) as standin:
        monkeypatch.setitem(os.environ, "AWS_ENDPOINT_URL_LAMBDA", standin.url)

        def work(event, context):
            gate.wait(10)
            ran.append(event["n"])

        standin.add("worker", work)
        client = aws_client("lambda", region="us-east-1", max_attempts=1)
        for n in range(6):
            answer = client.invoke(FunctionName="worker", InvocationType="Event", Payload=f'{{"n": {n}}}')
            assert answer["StatusCode"] == 202
        gate.set()
        standin.wait_idle()
    assert sorted(ran) == list(range(6))
    assert standin.max_running == 2
