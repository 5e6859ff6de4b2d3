"""The words `/train status`, `/train queue` and `trainbot status` show for a waiting job
(backend.domain.waiting.describe), and the cut of long reasons (backend.domain.bounds.clip):
exact texts, since these are what a person reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.domain.bounds import REASON_MAX, clip
from backend.domain.status import JobStatus
from backend.domain.waiting import WaitReason, describe

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def _reason(**changes: object) -> WaitReason:
    fields: dict[str, object] = {
        "job_id": "tb-bert-1", "owner": "U0ALICE", "status": JobStatus.NEW, "instance_type": "ml.p5.48xlarge",
        "instance_count": 2, "order": 7, "position": 3, "same_priority": 5, "priority": 1,
        "ahead_of_other_owners": 0, "ahead_of_own": 0, "claimed": False, "due_at": None, "hold_until": None,
        "in_use": 0, "limit": None, "capacity_budget_left": None,
    }
    fields.update(changes)
    return WaitReason(**fields)  # type: ignore[arg-type]


def test_a_job_waiting_only_its_turn_is_told_its_place():
    assert describe(_reason(), NOW) == ["#3 of 5 queued at priority 1 (#7 overall)"]


def test_every_cause_in_effect_is_told_most_binding_first_with_times_and_counts():
    lines = describe(
        _reason(
            claimed=True, hold_until=NOW + timedelta(seconds=45), in_use=7, limit=8,
            due_at=NOW + timedelta(minutes=20), capacity_budget_left=timedelta(hours=5, minutes=6),
            fallback_types=("ml.p4d.24xlarge", "ml.p4de.24xlarge"), ahead_of_other_owners=4, ahead_of_own=1,
        ),
        NOW,
    )
    assert lines == [
        "being launched now",
        "ml.p5.48xlarge is held until 12:00:45 UTC (in 45s) after SageMaker refused it for capacity or quota, "
        "or until one of its jobs ends",
        "ml.p5.48xlarge: 7 of 8 instances in use (instance limit); needs 2",
        "next attempt at 12:20:00 UTC (in 20m)",
        "capacity wait left before it fails: 5.1h",
        "may also run on ml.p4d.24xlarge, ml.p4de.24xlarge (fallback)",
        "#3 of 5 queued at priority 1 (#7 overall)",
        "fair share: 4 of other people's jobs and 1 of its owner's own are ahead",
    ]


def test_a_type_under_its_limit_shows_its_use_without_blaming_the_limit():
    lines = describe(_reason(in_use=6, limit=8, ahead_of_own=2), NOW)
    assert lines == [
        "ml.p5.48xlarge: 6 of 8 instances in use",
        "#3 of 5 queued at priority 1 (#7 overall)",
        "fair share: 0 of other people's jobs and 2 of its owner's own are ahead",
    ]


def test_times_are_said_in_seconds_minutes_or_hours_and_never_negative():
    def budget(delta: timedelta) -> str:
        return describe(_reason(capacity_budget_left=delta), NOW)[0]

    assert budget(timedelta(seconds=89)) == "capacity wait left before it fails: 89s"
    assert budget(timedelta(seconds=90)) == "capacity wait left before it fails: 2m"
    assert budget(timedelta(minutes=89, seconds=59)) == "capacity wait left before it fails: 90m"
    assert budget(timedelta(minutes=90)) == "capacity wait left before it fails: 1.5h"
    assert budget(timedelta(seconds=-30)) == "capacity wait left before it fails: 0s"


def test_a_long_reason_is_cut_to_its_limit_with_an_ellipsis_and_a_short_one_is_kept():
    assert clip("x" * REASON_MAX) == "x" * REASON_MAX
    assert clip("x" * (REASON_MAX + 1)) == "x" * (REASON_MAX - 1) + "…"
    assert clip("abcdef", 4) == "abc…" and len(clip("abcdef", 4)) == 4
    assert clip("abcd", 4) == "abcd"


def test_a_fallback_with_room_is_where_it_launches_and_the_first_choices_hold_is_no_cause():
    from backend.domain.waiting import TypeRoom

    reason = _reason(
        hold_until=NOW + timedelta(minutes=5), fallback_types=("ml.p4d.24xlarge",),
        fallback_rooms=(TypeRoom("ml.p4d.24xlarge", None, 2, 8),),
    )
    assert reason.fallback_with_room == "ml.p4d.24xlarge" and "hold" not in reason.causes
    assert describe(reason, NOW)[1:3] == [
        "may also run on ml.p4d.24xlarge (fallback)",
        "ml.p4d.24xlarge has room: it launches there at its turn",
    ]


def test_fallbacks_without_room_are_each_told_why_and_the_hold_stays_a_cause():
    from backend.domain.waiting import TypeRoom

    reason = _reason(
        in_use=8, limit=8, fallback_types=("ml.p4d.24xlarge", "ml.p4de.24xlarge"),
        fallback_rooms=(
            TypeRoom("ml.p4d.24xlarge", NOW + timedelta(seconds=30), 0, None),
            TypeRoom("ml.p4de.24xlarge", None, 7, 8),  # 7 + the job's 2 > 8
        ),
    )
    assert reason.fallback_with_room is None and "limit" in reason.causes
    assert describe(reason, NOW)[:4] == [
        "ml.p5.48xlarge: 8 of 8 instances in use (instance limit); needs 2",
        "may also run on ml.p4d.24xlarge, ml.p4de.24xlarge (fallback)",
        "ml.p4d.24xlarge is held too, until 12:00:30 UTC (in 30s)",
        "ml.p4de.24xlarge: 7 of 8 instances in use (instance limit)",
    ]


def test_the_queue_snapshot_judges_each_of_a_jobs_types():
    from backend.domain.waiting import QueueSnapshot, wait_reasons
    from tests.conftest import job_args, make_job

    args = job_args(ResourceConfig={"InstanceType": "ml.p5.48xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50})
    job = make_job("fb", job_args=args, now=NOW - timedelta(minutes=1), fallback_types=["ml.p4d.24xlarge"])
    held = {"ml.p5.48xlarge": NOW + timedelta(minutes=5)}

    free = wait_reasons(QueueSnapshot(now=NOW, queued=[job], holds=held))[0]
    assert free.fallback_with_room == "ml.p4d.24xlarge" and free.causes == []
    full = wait_reasons(QueueSnapshot(now=NOW, queued=[job], holds=held, usage={"ml.p4d.24xlarge": 4}, limits={"ml.p4d.24xlarge": 4}))[0]
    assert full.fallback_with_room is None and full.causes == ["hold"]
    assert full.fallback_rooms[0].in_use == 4
