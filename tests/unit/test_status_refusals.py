"""What an illegal status move says (the bot and the CLI render it): which job, from what, to
what; and a move without a reason records an empty one."""

from __future__ import annotations

import pytest

from backend.domain.model import transition
from backend.domain.status import JobStatus, check_transition
from backend.errors import IllegalTransition
from tests.conftest import T0, make_job

S = JobStatus


def test_an_illegal_move_names_the_job_and_both_statuses():
    job = make_job()
    with pytest.raises(IllegalTransition) as refused:
        transition(job, S.COMPLETED, at=T0)
    assert (refused.value.job_id, refused.value.from_status, refused.value.to_status) == (job.job_id, "New", "Completed")
    assert str(refused.value) == f"job {job.job_id}: New -> Completed is not a legal transition"
    with pytest.raises(IllegalTransition) as direct:
        check_transition("j-1", S.COMPLETED, S.RETRYING)
    assert direct.value.job_id == "j-1"


def test_a_move_without_a_reason_records_an_empty_one():
    assert transition(make_job(), S.LAUNCHED, at=T0).history[-1].reason == ""
