"""The cost guard (issue 14) through the Lambda handlers template.yaml declares, on moto and the
SageMaker stand-in: a held job is never launched, concurrent decisions resolve to one, usage is
counted from billed time once per attempt, and budgets are read with one GetItem."""

from __future__ import annotations

import threading

import pytest

from backend.domain.approval import ApprovalState
from backend.domain.cost import iso_week
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import NotAuthorized
from backend.services.budget import OverBudget, committed_hours
from tests.harness import ADMIN, ALICE, BOB, Stack

FIELDS = {
    "name": "big",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.p5.48xlarge",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
    "max_runtime": "1h",
}
APPROVAL = {"TRAINBOT_APPROVAL_INSTANCE_TYPES": "ml.p5.48xlarge"}


@pytest.fixture
def stack(moto_aws, request):
    built = Stack(env=getattr(request, "param", APPROVAL))
    yield built
    built.close()


def _submit(stack, name: str = "big", actor=ALICE, **fields: str):
    registered = stack.container.submissions.submit({**FIELDS, "name": name, **fields}, actor, token=f"t-{name}")
    return registered.job


def _count(stack, key: str) -> int:
    answer = stack.dynamodb.query(
        TableName=stack.settings.jobs_table_name, IndexName="Queue", Select="COUNT",
        KeyConditionExpression="QueueKey = :k", ExpressionAttributeValues={":k": {"S": key}},
    )
    return answer["Count"]


def test_the_launcher_never_launches_a_held_job_and_launches_it_once_approved(stack):
    held = _submit(stack)
    free = _submit(stack, "small", instance="ml.g5.xlarge")
    assert held.is_held and not free.is_held
    assert _count(stack, "held") == 1 and stack.unsettled() == 2

    for _ in range(5):
        stack.tick(60, sweep=True)
    assert stack.sagemaker.created_names == [f"{free.job_id}-a1"]
    assert stack.store.get(held.job_id).status is JobStatus.NEW

    stack.container.approvals.approve(held.job_id, ADMIN.user_id)
    assert _count(stack, "held") == 0
    stack.tick(60)
    assert f"{held.job_id}-a1" in stack.sagemaker.created_names
    [job] = stack.run_until_settled([held.job_id])
    assert job.status is JobStatus.COMPLETED
    assert [h.reason for h in job.history][:2] == ["submitted", f"approved by <@{ADMIN.user_id}>"]


def test_only_admins_decide(stack):
    held = _submit(stack)
    with pytest.raises(NotAuthorized):
        stack.container.approvals.approve(held.job_id, ALICE.user_id)
    with pytest.raises(NotAuthorized):
        stack.container.approvals.reject(held.job_id, BOB.user_id, "no")
    assert stack.store.get(held.job_id).version == held.version


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_approve_and_reject_resolve_to_exactly_one_outcome(stack, round_):
    held = _submit(stack, f"race{round_}")
    approvals = stack.container.approvals
    barrier = threading.Barrier(4)
    results: list = []

    def press(decide):
        barrier.wait()
        results.append(decide())

    threads = [
        threading.Thread(target=press, args=(lambda: approvals.approve(held.job_id, ADMIN.user_id),)),
        threading.Thread(target=press, args=(lambda: approvals.reject(held.job_id, ADMIN.user_id, "too big"),)),
        threading.Thread(target=press, args=(lambda: approvals.approve(held.job_id, ADMIN.user_id),)),
        threading.Thread(target=press, args=(lambda: approvals.reject(held.job_id, ADMIN.user_id, "too big"),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(results) == 4 and sum(d.changed for d in results) == 1
    job = stack.store.get(held.job_id)
    assert job.version == held.version + 1
    if job.approval.state is ApprovalState.APPROVED:
        assert job.status is JobStatus.NEW and not job.is_held
    else:
        assert job.approval.state is ApprovalState.REJECTED and job.status is JobStatus.STOPPED
    assert sum("approved by" in h.reason or "rejected by" in h.reason for h in job.history) == 1


@pytest.mark.parametrize("stack", [{"TRAINBOT_TEAM_BUDGETS": "nlp=100", "TRAINBOT_USER_TEAMS": "UALICE=nlp"}], indirect=True)
def test_usage_is_billed_time_times_instances_counted_once_however_often_the_event_comes(stack):
    job = _submit(stack, instance="ml.g5.xlarge", count="2")
    events: list[dict] = []
    for _ in range(40):
        stack.clock.advance(30)
        stack.launch()
        batch = stack.sagemaker.drain_events()
        events.extend(batch)
        for event in batch:
            stack.monitor_handler(event, stack.context)
            stack.monitor_handler(event, stack.context)  # EventBridge delivers at least once
        if stack.store.get(job.job_id).is_terminal:
            break
    for event in events:  # and late, again
        stack.monitor_handler(event, stack.context)
    stack.sweep()

    job = stack.store.get(job.job_id)
    assert job.status is JobStatus.COMPLETED
    billed = job.attempts[-1].billable_seconds
    assert billed
    week = iso_week(job.attempts[-1].ended_at)
    record = stack.store.get_record(RecordKind.USAGE, f"nlp#{week}")
    assert record["Seconds"] == billed * 2
    assert stack.container.budgets.used_hours("nlp", week) == pytest.approx(billed * 2 / 3600)


@pytest.mark.parametrize("stack", [{"TRAINBOT_TEAM_BUDGETS": "nlp=1", "TRAINBOT_USER_TEAMS": "UALICE=nlp"}], indirect=True)
def test_a_budget_check_is_one_get_item_never_a_scan_or_query(stack):
    calls = stack.store.metrics.calls
    before = dict(calls)
    with pytest.raises(OverBudget) as refused:
        _submit(stack, instance="ml.g5.xlarge", max_runtime="2h")
    assert "2.00 instance-hours" in str(refused.value.problems) and "0.00 of 1.00" in str(refused.value.problems)
    spent = {op: n - before.get(op, 0) for op, n in calls.items() if n != before.get(op, 0)}
    assert spent == {"get_item": 1}  # the usage record; nothing registered, nothing scanned


BUDGET = {"TRAINBOT_TEAM_BUDGETS": "nlp=10", "TRAINBOT_USER_TEAMS": "UALICE=nlp"}


@pytest.mark.parametrize("stack", [BUDGET], indirect=True)
def test_a_job_whose_create_is_refused_for_good_gives_its_reservation_back(stack):
    job = _submit(stack, instance="ml.g5.xlarge", max_runtime="2h")
    week = iso_week(stack.clock.now())
    assert committed_hours(stack.store, "nlp", week) == pytest.approx(2)
    stack.sagemaker.script_create(None, "ValidationException")

    stack.launch()

    assert stack.store.get(job.job_id).status is JobStatus.FAILED
    assert committed_hours(stack.store, "nlp", week) == 0
