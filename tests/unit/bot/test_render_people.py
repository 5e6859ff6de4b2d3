"""People are shown one way in every Slack message (issue 24): a Slack member as a mention,
never as a raw id. Every public render function is called here with jobs, sweeps, stats,
budgets, queues and approvals that name an owner and an admin; a raw id outside a mention in
any output fails, and so does a render function this test does not know (a new one must say
whether it shows people)."""

from __future__ import annotations

import inspect
import json
import re
from datetime import timedelta
from typing import Any

import pytest

from backend.adapters.slack import plans_view, render, waiting
from backend.domain.approval import ApprovalState
from backend.domain.cost import estimate
from backend.domain.model import Approval, Attempt, AttemptOutcome, FailureClass, attempt_name, transition
from backend.domain.spec import parse_objective
from backend.domain.status import JobStatus
from backend.domain.waiting import QueueSnapshot, wait_reasons
from backend.services.budget import BudgetCheck, OverBudget
from backend.services.queue import QueuePage
from backend.services.stats import Window, compute_stats
from tests.conftest import T0, make_job

S = JobStatus
OWNER = "U0OWNER42"  # a user in no team: their budget is keyed by their id
ADMIN = "U0ADMIN77"  # in team nlp
PEOPLE = (OWNER, ADMIN)
NOW = T0 + timedelta(hours=3)


def _teams(user: str) -> str:
    return "nlp" if user == ADMIN else user


def _ran(job, number: int, outcome: AttemptOutcome, **extra: Any) -> Attempt:
    return Attempt(
        number=number, name=attempt_name(job.job_id, number), claimed_at=T0, launched_at=T0, started_at=T0 + timedelta(minutes=1),
        ended_at=T0 + timedelta(minutes=30), outcome=outcome, billable_seconds=1740, **extra,
    )


def _jobs() -> dict[str, Any]:
    check = BudgetCheck(team=OWNER, week="2026-W01", used_hours=4.0, budget_hours=5.0, asked_hours=2.0)
    over = f"over the weekly budget: this asks for up to 2.00 instance-hours; {check.text()} (1.00 left)"
    new = make_job("fresh", user=OWNER)
    held = make_job("held", user=OWNER).model_copy(update={"approval": Approval(reasons=[over])})
    launched = transition(new, S.LAUNCHED, at=T0, attempts=[_ran(new, 1, AttemptOutcome.RUNNING)])
    stopping = transition(launched, S.STOPPING, at=T0 + timedelta(minutes=5), reason=f"stopped by <@{ADMIN}>")
    stopped = transition(stopping, S.STOPPED, at=T0 + timedelta(minutes=6), reason="stopped")
    completed = transition(
        launched, S.COMPLETED, at=T0 + timedelta(minutes=30), reason="completed",
        attempts=[_ran(new, 1, AttemptOutcome.COMPLETED)], final_metrics={"loss": 0.1}, model_artifact="s3://b/m.tar.gz",
    )
    failed = transition(
        launched, S.FAILED, at=T0 + timedelta(minutes=30), reason="AlgorithmError: x",
        attempts=[_ran(new, 1, AttemptOutcome.FAILED, failure_class=FailureClass.ALGORITHM, reason="AlgorithmError: x")],
    )
    approved = held.model_copy(update={"approval": Approval(state=ApprovalState.APPROVED, decided_by=ADMIN, decided_at=T0)})
    rejected = transition(
        held, S.STOPPED, at=T0, reason=f"rejected by <@{ADMIN}>: too big",
        approval=Approval(state=ApprovalState.REJECTED, decided_by=ADMIN, decided_at=T0, note="too big"),
    )
    swept = completed.model_copy(update={"sweep_id": "sw-1", "job_args": completed.job_args.model_copy(update={"HyperParameters": {"lr": "1"}})})
    admins = make_job("admins", user=ADMIN)
    admins = transition(admins, S.LAUNCHED, at=T0, attempts=[_ran(admins, 1, AttemptOutcome.RUNNING)])
    admins = transition(admins, S.COMPLETED, at=T0 + timedelta(minutes=30), attempts=[_ran(admins, 1, AttemptOutcome.COMPLETED)])
    return {
        "check": check, "over": over, "new": new, "held": held, "launched": launched, "stopping": stopping, "stopped": stopped,
        "completed": completed, "failed": failed, "approved": approved, "rejected": rejected, "swept": swept, "admins": admins,
    }


def _calls() -> dict[str, list[Any]]:
    """Each render function's outputs for the fixtures above (a list: several cases each)."""
    j = _jobs()
    every = [j[k] for k in ("new", "held", "launched", "stopping", "stopped", "completed", "failed", "approved", "rejected")]
    est = estimate([j["held"].job_args])
    stats = compute_stats([j["completed"], j["failed"], j["admins"]], Window.last_days(14, NOW), NOW, team_of=_teams)
    assert stats.spend.by_user and stats.spend.by_team  # the lines under test are there
    summary = render.stats_summary(stats, scope="user", user_id=OWNER, preset=None, days=14)
    queued = [j["new"], make_job("second", user=ADMIN)]
    reasons = wait_reasons(QueueSnapshot(now=NOW, queued=queued))
    page = QueuePage(reasons=reasons, start=0, total=len(reasons), instance_type=None, page=1, pages=1, held=(j["held"],), held_total=1)
    objective = parse_objective("min:loss")
    return {
        "approval_lines": [render.approval_lines(x) for x in every],
        "approval_request": [render.approval_request(j["held"], est)],
        "approved_reply": [render.approved_reply(j["approved"], ADMIN)],
        "budget_text": [render.budget_text(j["check"]), render.budget_text(BudgetCheck("nlp", "2026-W01", 1.0, None))],
        "capacity_line": [render.capacity_line(x) for x in every],
        "changed": [render.changed(action, x) for action in ("stop", "retry") for x in every],
        "decided": [render.decided(action, x, changed) for action in ("approve", "reject") for x in (j["approved"], j["rejected"], j["held"]) for changed in (True, False)],
        "failure_verdict": [render.failure_verdict(x) for x in every],
        "headline": [render.headline(x) for x in every],
        "held_text": [render.held_text(j["held"])],
        "job_card": [render.job_card(x, "us-east-1") for x in every],
        "list_page": [render.list_page(every, scope=scope, status=None, cursor="c") for scope in ("all", "mine")],
        "mention": [render.mention(OWNER)],
        "not_authorized": [render.not_authorized(f"only <@{OWNER}> (the owner) or an admin may change x-1")],
        "preset_list": [render.preset_list({"nlp": OWNER})],
        "preset_not_yours": [render.preset_not_yours("nlp", OWNER)],
        "preset_show": [render.preset_show("nlp", {"image": "x"}, OWNER)],
        "problems_text": [render.problems_text(OverBudget([j["over"] + ". Ask an admin."]).problems)],
        "reason_text": [render.reason_text(f"stopped by <@{ADMIN}>"), render.reason_text(f"approved by <@{ADMIN}>")],
        "results_table": [render.results_table([j["swept"]], objective)],
        "retry_line": [render.retry_line(j["failed"], j["failed"].last_seq)],
        "retry_rejected": [render.retry_rejected(j["rejected"].job_id, ADMIN, "too big")],
        "spend_text": [render.spend_text(stats.spend)],
        "stall_warning": [render.stall_warning(j["launched"], T0, 3600)],
        "stats_summary": [summary, render.stats_summary(stats, scope="all", user_id=None, preset=None, days=14)],
        "stats_whose": [render.stats_whose("user", OWNER, None)],
        "stats_chart_caption": [
            render.stats_chart_caption(stats, scope=scope, user_id=OWNER, requester=ADMIN, preset=None, days=14) for scope in ("mine", "user", "all")
        ],
        "status_card": [render.status_card(x, "us-east-1", NOW) for x in every],
        "stopped_by": [render.stopped_by(j["stopped"])],
        "submitted": [render.submitted(x, True, est) for x in (j["new"], j["held"])],
        "sweep_failure_line": [render.sweep_failure_line(j["failed"], j["failed"].last_seq)],
        "sweep_job_reply": [render.sweep_job_reply(x, x.last_seq) for x in (j["completed"], j["failed"], j["stopped"])],
        "sweep_root": [render.sweep_root("grid", OWNER, "sw-1", 3, {"Completed": 1})],
        "sweep_summary": [render.sweep_summary("grid", OWNER, 3, {"Completed": 3}, [], [j["swept"]], objective)],
        "team_label": [render.team_label(OWNER), render.team_label("nlp")],
        "thread_reply": [render.thread_reply(x, seq) for x in every for seq in range(1, x.last_seq + 1)],
        "with_budget": [render.with_budget(summary, j["check"])],
        "queue_page": [waiting.queue_page(page, NOW)],
        "with_wait_reason": [waiting.with_wait_reason(render.status_card(j["new"], "us-east-1", NOW), reasons[0], NOW)],
    }


# Render functions that show no person (what they take names none), each with why.
NO_PERSON = {
    "code_block": "text as a code block", "console_url": "a link", "cut": "shortens mrkdwn", "duration": "a duration",
    "esc": "escapes", "fit_answer": "shortens a message", "help_text": "the help", "illegal": "a job id and a status",
    "log_tail_text": "a log's tail (inert: forensics)", "live_metrics_line": "metric values", "logs_url": "a link", "metrics_text": "metric values",
    "no_budgets": "fixed text", "not_found": "a job id", "ambiguous_name": "a job name and ids", "number": "a number", "oops": "fixed text", "rank": "orders jobs",
    "refused_team": "fixed text", "refused_user": "fixed text", "reject_modal": "a job id", "retry_too_soon": "a job id and a wait", "preset_saved": "a preset's name",
    "preset_deleted": "a preset's name", "preset_missing": "a preset's name", "stream_console_url": "a link",
    "submit_modal": "the form", "submitting": "a job's name", "sweep_already_confirmed": "fixed text",
    "sweep_cancelled": "fixed text", "sweep_confirm": "a sweep's size", "sweep_digest": "lines of failures (sweep_failure_line)",
    "sweep_expired": "fixed text", "sweep_registered": "a sweep's size", "sweep_registering": "a sweep's size",
    "sweep_stopped": "counts", "unavailable": "fixed text", "varying_hyperparameters": "names of hyperparameters",
    "stats_working": "a number of days", "plans_text": "training plans (no owner)",
    "plan_end_warning": "a plan's end (the thread is the owner's)", "plan_hours_text": "training plans' hours",
    "stats_posted": "fixed text", "stats_not_shared": "fixed text", "stats_chart_alt_text": "counts by status",
}
# Plain-text surfaces (no mrkdwn: a mention would show as markup), where the id is said.
PLAIN_TEXT = {"stats_chart_title": lambda: render.stats_chart_title("user", OWNER, None, 14)}


def _public(module) -> set[str]:
    return {n for n, f in inspect.getmembers(module, inspect.isfunction) if f.__module__ == module.__name__ and not n.startswith("_")}


def _raw_ids(output: Any) -> list[str]:
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    outside = re.sub("<@(?:" + "|".join(PEOPLE) + ")>", "", text)
    return [person for person in PEOPLE if person in outside]


def test_every_render_function_is_checked_for_how_it_shows_people():
    known = set(_calls()) | set(NO_PERSON) | set(PLAIN_TEXT)
    public = _public(render) | _public(waiting) | _public(plans_view)
    assert public - known == set(), "a new render function: add it to _calls, NO_PERSON or PLAIN_TEXT"
    assert known - public == set()


@pytest.mark.parametrize("name", sorted(_calls()))
def test_a_person_is_a_mention_in_every_render_never_a_raw_id(name):
    outputs = _calls()[name]
    assert outputs
    for output in outputs:
        assert _raw_ids(output) == [], output


def test_the_people_every_render_names_are_there_as_mentions():
    shown = json.dumps({name: outputs for name, outputs in _calls().items()}, ensure_ascii=False)
    assert f"<@{OWNER}>" in shown and f"<@{ADMIN}>" in shown
    # On cards, sweep cards and stats, where issue 24 found raw ids:
    card = json.dumps(render.job_card(_jobs()["new"], "us-east-1"))
    assert f"Owner <@{OWNER}>" in card
    assert f"by <@{OWNER}>" in render.sweep_root("grid", OWNER, "sw-1", 3)["blocks"][0]["text"]["text"]
    by_team = render.spend_text(compute_stats([_jobs()["completed"], _jobs()["admins"]], Window.last_days(14, NOW), NOW, team_of=_teams).spend)
    assert f"*By team*: <@{OWNER}>" in by_team or f"· <@{OWNER}>" in by_team.split("*By team*")[1]
    assert "`nlp`" in by_team.split("*By team*")[1]  # a team is not a person: its name, as text


def test_plain_text_surfaces_say_the_id():
    for name, call in PLAIN_TEXT.items():
        text = call()
        assert OWNER in text and "<@" not in text, name
