"""`trainbot local`'s cost-guard options (issue 22, "Try it locally"): `--budget`,
`--approve-over` … reach every function's environment (they were overwritten by the
template's defaults), the page's users are team `local` and "you" is an admin, so the flow —
estimate, hold, approval DM, approve, budget answer — can be tried on the page."""

from __future__ import annotations

import dataclasses
import io
import logging
import os
from collections.abc import Iterator

import pytest

from backend.config import Settings
from backend.domain.model import Owner
from backend.domain.status import JobStatus
from backend.entrypoints.cli import build_parser, local_options
from infra.local import TEAM_ID, LocalStack
from tests.e2e.local_loop import drive_until, until_status

SUBMIT = (
    "submit name={name} image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest instance=ml.g5.xlarge "
    "output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime={hours}h"
)


def _options(*argv: str):
    args = build_parser().parse_args(["local", "--port", "0", "--chaos", "0", *argv])
    options = local_options(args, io.StringIO())
    return dataclasses.replace(
        options, launcher_every=0.5, monitor_every=2.0, events_every=0.2, startup_seconds=0.5, run_seconds=2.0,
        stop_seconds=0.5, log_transitions=False, write_connection_file=False,
    )


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    with LocalStack(_options("--budget", "local=5", "--approve-over", "2", "--approve-sweeps", "10")) as running:
        yield running


def test_the_cost_guard_options_reach_the_functions_environment(stack):
    settings = Settings.from_env(os.environ)  # what every function's cold start reads
    assert settings.team_budgets == {"local": 5.0}
    assert settings.approval_instance_hours == 2.0 and settings.approval_sweep_size == 10
    assert settings.team_of("U0YOU") == "local" and settings.is_admin("U0YOU") and settings.is_admin("U0ADMIN")
    assert os.environ["AWS_ENDPOINT_URL_PRICING"] == stack.prices.url  # list prices from the stand-in


def test_a_submission_over_the_approval_line_is_held_and_runs_once_the_page_user_approves(stack):
    stack.page.command("/train " + SUBMIT.format(name="big", hours=3), "U0YOU")
    job = drive_until(
        stack,
        "big to be registered",
        lambda: next((j for j in stack.store.jobs_of_owner(Owner(team_id=TEAM_ID, user_id="U0YOU"), limit=50).jobs if j.name == "big"), None),
        watch=["big"],
    )
    assert job.is_held  # 3 instance-hours > --approve-over 2

    from backend.bootstrap import build

    # "you" is an admin: the decision the DM's Approve button makes, as that user.
    assert build(Settings.from_env(os.environ)).approvals.approve(job.job_id, "U0YOU").changed
    done = until_status(stack, "big", JobStatus.COMPLETED)
    assert done.current_attempt.billable_seconds is not None
