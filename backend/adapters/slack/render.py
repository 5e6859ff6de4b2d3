"""Every word and Block Kit block Trainbot shows in Slack.

One module for the bot's answers and the notifier's thread messages, so a job's card looks the
same however it was produced. Text that came from a user (job names, reasons, values echoed in
error messages) always goes through :func:`esc`, which makes ``<!channel>``, ``<@U…>`` and
``<https://…|links>`` inert: Slack only parses markup that arrives as raw ``<``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from backend.domain.approval import ApprovalState
from backend.domain.cost import Estimate, describe, hours_text, job_instance_hours, money_text
from backend.domain.forensics import LOG_GROUP, exit_code, plain_failure
from backend.domain.logtail import TAIL_BYTES, TAIL_LINES, TailState
from backend.domain.people import is_slack_user
from backend.domain.plans import TERMINATION_LEAD, when
from backend.domain.spec import SUBMIT_EXAMPLE, Objective
from backend.domain.status import TERMINAL, JobStatus
from backend.domain.terms import AttemptOutcome, FailureClass

if TYPE_CHECKING:
    from backend.domain.history import HistoryEntry
    from backend.domain.model import Attempt, Job, LogTail

S = JobStatus
MAX_SECTION = 2900  # Slack's section text limit is 3,000 characters

EMOJI = {
    S.NEW: ":hourglass_flowing_sand:",
    S.LAUNCHED: ":rocket:",
    S.IN_PROGRESS: ":gear:",
    S.RETRYING: ":repeat:",
    S.STOPPING: ":octagonal_sign:",
    S.COMPLETED: ":white_check_mark:",
    S.FAILED: ":x:",
    S.STOPPED: ":black_square_for_stop:",
}

# Button action ids: the contract between these blocks and bot.listeners.actions.
STOP_ACTION = "job_stop"
STOP_SWEEP_ACTION = "sweep_stop"
RETRY_ACTION = "job_retry"
LOGS_ACTION = "job_logs"
LIST_MORE_ACTION = "list_more"
SWEEP_CONFIRM_ACTION = "sweep_confirm"
SWEEP_CANCEL_ACTION = "sweep_cancel"
SUBMIT_VIEW = "train_submit"
APPROVE_ACTION = "job_approve"
REJECT_ACTION = "job_reject"
REJECT_VIEW = "job_reject_reason"


def esc(text: Any, limit: int = 500) -> str:
    """``text`` made inert for Slack mrkdwn (``& < >`` escaped) and cut to ``limit`` characters."""
    value = str(text)
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    """A person, the one way every message shows people: a Slack member id as Slack's mention
    (shown as their name), anything else (a CLI user's login name) inert. Slack notifies a
    person mentioned in a new message (never in an edit): the job card's post tells its owner
    the job is registered, and the end mentions them again (backend.domain.notice)."""
    return f"<@{user_id}>" if is_slack_user(user_id) else esc(user_id, 40)


def team_label(team: str) -> str:
    """A budget's team: its name as code; the team of one of a user in no team (keyed by
    their id) is that user."""
    return mention(team) if is_slack_user(team) else f"`{esc(team, 40)}`"


# The one person a budget line of Trainbot's names (backend.domain.people.team_words): kept live
# in the service sentences shown as problems and approval reasons, everything else inert.
_BUDGET_OWNER = re.compile(r"&lt;@([UW][A-Z0-9]{2,20})&gt; \(in no team\)")


def _with_budget_owner(text: str) -> str:
    return _BUDGET_OWNER.sub(lambda m: f"<@{m.group(1)}> (in no team)", text)


# Reasons Trainbot writes itself name a person ("stopped by <@U0ALICE>"): that one mention stays
# live; everything else in a reason (SageMaker's text, anything a user typed) is made inert.
_OUR_MENTION = re.compile(r"^(stopped by|retry requested by|approved by|rejected by) &lt;@([UW][A-Z0-9]{2,20})&gt;")


def reason_text(reason: str, limit: int = 400) -> str:
    """A history reason for mrkdwn: inert, except the person Trainbot's own reasons name."""
    return _OUR_MENTION.sub(lambda m: f"{m.group(1)} <@{m.group(2)}>", esc(reason, limit))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min" if not sec or minutes >= 10 else f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, MAX_SECTION)}]}


_OPEN_ENTITY = re.compile(r"&[a-z]{0,4}$|<[^>]*$")


def cut(text: str, limit: int) -> str:
    """``text`` (already mrkdwn) within ``limit`` characters: cut at a line when one is near,
    never inside an escape (``&amp;``) or a ``<link|label>``, and marked with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    line = head.rfind("\n")
    if line > limit * 3 // 4:
        head = head[:line]
    head = _OPEN_ENTITY.sub("", head)
    if head.count("```") % 2:
        head = head[: head.rfind("```")]  # never leave a code block open: it would swallow the rest
    return head + "…"


MAX_ANSWER = 4000  # Slack: "For best results, limit the number of characters in the text field to 4,000"


def fit_answer(message: dict[str, Any], limit: int = MAX_ANSWER) -> dict[str, Any]:
    """``message`` summarized to about ``limit`` characters of text: its ``text`` cut at a line,
    and of its blocks, in order, those that fit (the last one that does not is cut, whole lines
    only), then a note of what was left out; buttons are always kept."""
    fitted = dict(message)
    if isinstance(message.get("text"), str):
        fitted["text"] = cut(message["text"], limit)
    blocks = message.get("blocks")
    if not blocks:
        return fitted
    room, kept, left_out = limit, [], 0
    for block in blocks:
        size = len(json.dumps(block))
        if block.get("type") == "actions" or size <= room:
            kept.append(block)
            room -= size if block.get("type") != "actions" else 0
            continue
        text = _mrkdwn_of(block)
        if text is not None and room > 300 and not left_out:
            kept.append(_section(cut(text, room - 150)) if block["type"] == "section" else _context(cut(text, room - 150)))
            room = 0
        left_out += 1
    if left_out:
        note = _context("_…more than fits in one message: `/train list` or `/train status <job>` show the rest_")
        actions = [i for i, b in enumerate(kept) if b.get("type") == "actions"]
        kept.insert(actions[0] if actions else len(kept), note)
    fitted["blocks"] = kept
    return fitted


def _mrkdwn_of(block: dict[str, Any]) -> str | None:
    if block.get("type") == "section" and isinstance((block.get("text") or {}).get("text"), str) and not block.get("fields"):
        return str(block["text"]["text"])
    elements = block.get("elements") or []
    if block.get("type") == "context" and len(elements) == 1 and isinstance(elements[0].get("text"), str):
        return str(elements[0]["text"])
    return None


def code_block(text: str, limit: int = 3000) -> str:
    """``text`` as an inert mrkdwn code block. Slack has no escape for a backtick, so a
    zero-width space follows each one: no run of them can close the block early."""
    return "```" + esc(text, limit).replace("`", "`\u200b") + "```"


def _fit_newest(lines: list[str], room: int) -> list[str]:
    """As many of the newest ``lines`` as fit whole in ``room`` characters, oldest first."""
    kept: list[str] = []
    for line in reversed(lines):
        if len(line) + 1 > room:
            break
        kept.insert(0, line)
        room -= len(line) + 1
    return kept


def _button(text: str, action_id: str, value: str = "", *, style: str | None = None, url: str | None = None) -> dict:
    button: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action_id}
    if value:
        button["value"] = value
    if style:
        button["style"] = style
    if url:
        button["url"] = url
    return button


# --- links ------------------------------------------------------------------------------------


def console_url(region: str, training_job_name: str) -> str:
    return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{training_job_name}"


def logs_url(region: str, training_job_name: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        "#logsV2:log-groups/log-group/$252Faws$252Fsagemaker$252FTrainingJobs"
        f"$3FlogStreamNameFilter$3D{training_job_name}"
    )


def stream_console_url(region: str, stream: str) -> str:
    """The CloudWatch console page of one training log stream (the console's ``$25``-escaped
    fragment: ``/`` is ``$252F``)."""

    def quote(text: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else f"$25{ord(c):02X}" for c in text)

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{quote(LOG_GROUP)}/log-events/{quote(stream)}"
    )


# --- the job card (thread root) ---------------------------------------------------------------


def headline(job: Job) -> str:
    return f"{EMOJI[job.status]} *{esc(job.name, 80)}* `{job.job_id}` is *{job.status.value}*"


def job_card(job: Job, region: str) -> dict[str, Any]:
    """The thread root: name, owner, instance, status, last reason, and the job's buttons."""
    args = job.job_args
    lines = [
        headline(job),
        # The owner as everywhere else (render.mention): the card's post tells them their job
        # is registered; its edits notify nobody; the end mentions them (backend.domain.notice).
        f"Owner {mention(job.owner.user_id)} · `{job.running_instance_type}` × {args.instance_count}"
        + (f" (of {', '.join(f'`{t}`' for t in job.instance_choices)})" if job.fallback_types else "")
        + (" · spot" if args.EnableManagedSpotTraining else "")
        + f" · priority {job.priority}"
        + f" · ≤ {hours_text(job_instance_hours(args))} instance-hours",
    ]
    lines.extend(approval_lines(job))
    blocks: list[dict[str, Any]] = [_section("\n".join(lines))]
    last = job.history[-1] if job.history else None
    if last and last.reason and last.to_status is not S.NEW:
        blocks.append(_context(reason_text(last.reason, 300)))
    waiting_for_capacity = capacity_line(job)
    if waiting_for_capacity:
        blocks.append(_context(waiting_for_capacity))
    elif job.status is S.RETRYING and job.next_attempt_at is not None:
        # A time, not a countdown: the card stays true without being updated.
        blocks.append(_context(f":hourglass_flowing_sand: next attempt at {job.next_attempt_at:%H:%M:%S} UTC"))
    if job.is_queued and job.waiting:
        # Why it waits, as the launcher last recorded it (backend.domain.waiting).
        blocks.append(_context(f":hourglass_flowing_sand: {reason_text(job.waiting, 300)}"))
    running_metrics = live_metrics_line(job)
    if running_metrics:
        blocks.append(_context(running_metrics))
    buttons = []
    verdict = failure_verdict(job)
    if job.status not in TERMINAL:
        buttons.append(_button("Stop", STOP_ACTION, job.job_id, style="danger"))
    if job.status in (S.FAILED, S.STOPPED):
        buttons.append(_button("Retry", RETRY_ACTION, job.job_id, style="primary"))
    if job.current_attempt is not None:
        buttons.append(_button("View logs", LOGS_ACTION, job.job_id, url=logs_url(region, job.current_attempt.name)))
    if buttons:
        blocks.append({"type": "actions", "block_id": f"job:{job.job_id}", "elements": buttons})
    if verdict:
        # The card's last line: which kind of failure, in plain words (backend.domain.forensics).
        blocks.append(_context(verdict))
    text = f"{job.name} ({job.job_id}) is {job.status.value}"
    return {"text": esc(text, 300), "blocks": blocks}


_CAPACITY = (FailureClass.CAPACITY, FailureClass.QUOTA)


def _refused_for_capacity(job: Job) -> list[Attempt]:
    """The attempts of its current capacity wait: the latest ones in a row (but one still
    being tried) that found no capacity or quota."""
    if job.capacity_wait_since is None:
        return []
    refused: list[Attempt] = []
    for attempt in reversed(job.attempts):
        if attempt.outcome in (AttemptOutcome.PENDING, AttemptOutcome.RUNNING) and not refused:
            continue
        if attempt.failure_class not in _CAPACITY:
            break
        refused.append(attempt)
    return refused[::-1]


def _types_tried(job: Job, attempts: list[Attempt]) -> str:
    """The types those attempts ran on, in the job's order of preference."""
    tried = {job.instance_type_of(a) for a in attempts}
    return ", ".join(f"`{t}`" for t in job.instance_choices if t in tried)


def capacity_line(job: Job) -> str:
    """While a job waits for capacity (its retries are not told in the thread: see
    backend.domain.notice), one card line that changes with each attempt: the types tried, the
    attempts, how long it has waited, and what happens next."""
    if job.status in TERMINAL:
        return ""
    refused = _refused_for_capacity(job)
    if not refused or job.capacity_wait_since is None:
        return ""
    since = job.capacity_wait_since
    waited = duration(max(0.0, (job.updated_at - since).total_seconds()))
    count = len(refused)
    line = (
        f":hourglass_flowing_sand: No capacity yet on {_types_tried(job, refused)}: "
        f"{count} attempt{'s' if count != 1 else ''} since {since:%H:%M} UTC ({waited})"
    )
    if job.status is S.RETRYING and job.next_attempt_at is not None:
        line += f" · next attempt at {job.next_attempt_at:%H:%M:%S} UTC"
    elif job.status in (S.LAUNCHED, S.IN_PROGRESS) and job.current_attempt is not None:
        line += f" · now trying `{job.running_instance_type}` (attempt {job.current_attempt.number})"
    return line + " · retries for capacity are free"


def failure_verdict(job: Job) -> str:
    """The plain-words failure class of a job that failed, is stopped, or waits to retry."""
    if job.status not in (S.FAILED, S.STOPPED, S.RETRYING):
        return ""
    attempt = job.current_attempt
    if job.status is S.FAILED and attempt is not None and attempt.failure_class in _CAPACITY:
        # Its wait ran out: nothing is waiting any more, and the owner decides what next.
        tried = _types_tried(job, [a for a in job.attempts if a.failure_class in _CAPACITY])
        return f"No capacity on {tried}: Trainbot stopped waiting. Retry later, or list more instance types (instance=a,b)."
    if job.status is S.STOPPED:
        who = stopped_by(job)
        if who:
            return f"Stopped by {who}."
    words = plain_failure(job.current_attempt)
    if not words and job.status is S.STOPPED:
        words = "Stopped by someone."  # before it was ever launched
    if attempt is not None and attempt.failure_class is FailureClass.PLAN_ENDED:
        # What happens next: the policy retried it on-demand (plan_fallback) or ended it.
        words += (
            " Trainbot runs it again on on-demand capacity (plan_fallback=ondemand)."
            if job.status is S.RETRYING
            else " Retry it on a later plan, or with plan_fallback=ondemand."
        )
    return esc(words, 300)


_STOPPED_BY = re.compile(r"^stopped by <@([UW][A-Z0-9]{2,20})>")


def stopped_by(job: Job) -> str:
    """Who asked to stop the job (a mention), from the reason Trainbot wrote on its Stopping or
    Stopped entry; empty when it was stopped outside Trainbot."""
    for entry in reversed(job.history):
        if entry.to_status not in (S.STOPPING, S.STOPPED):
            break
        match = _STOPPED_BY.match(entry.reason or "")
        if match:
            return mention(match.group(1))
    return ""


# --- failure forensics ------------------------------------------------------------------------


def log_tail_text(attempt: Attempt, region: str, *, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str:
    """The failed attempt's exit code, the end of its log (escaped, in a code block, within the
    budget) and the console link; empty when the failure did not point at the container."""
    tail = attempt.log_tail
    if tail is None:
        return ""
    code = exit_code(attempt.reason)
    parts = [f"exit code {esc(code, 12)}"] if code else []
    link = f"<{_logs_link(tail, region, attempt.name)}|the log in CloudWatch>"
    if tail.state is TailState.READ:
        text = tail.text(max_lines=max_lines, max_bytes=max_bytes)
        parts.append(f"last lines of `{esc(attempt.name, 70)}` ({link}):")
        return " · ".join(parts) + "\n" + code_block(text, max_bytes + 200)
    why = {
        TailState.MISSING: "no log stream: the container never started",
        TailState.EMPTY: "the log is empty",
        TailState.UNREADABLE: "the log could not be read just now",
    }[tail.state]
    parts.append(f"{why} ({link})")
    return " · ".join(parts)


def _logs_link(tail: LogTail, region: str, training_job_name: str) -> str:
    if tail.hosts:
        return stream_console_url(region, tail.hosts[0].stream)
    return logs_url(region, training_job_name)


def stall_warning(job: Job, last_line_at: datetime, silent_seconds: float) -> str:
    """The one warning a silent running job's thread gets."""
    attempt = job.current_attempt
    name = attempt.name if attempt else job.job_id
    return (
        f":warning: *{esc(job.name, 80)}* has written no log line for {duration(silent_seconds)} "
        f"(last at {last_line_at:%H:%M} UTC; stall_alert {duration(float(job.stall_alert_seconds or 0) or silent_seconds)}). "
        f"It is still running: check `{esc(name, 70)}` for a hung step, or stop it."
    )


def plan_end_warning(job: Job, seq: int) -> str:
    """The one warning a running attempt on a training plan gets when the plan ends before its
    max runtime could: the plan, its end, what SageMaker does then and what to do about it."""
    entry = _entry(job, seq)
    attempt = next((a for a in job.attempts if a.plan_end_warned_at == entry.at), job.current_attempt)
    plan = (attempt.plan if attempt else None) or job.plan or "?"
    ends = attempt.plan_ends_at if attempt and attempt.plan_ends_at else entry.at
    stops = ends - TERMINATION_LEAD
    lines = [
        f":warning: *{esc(job.name, 80)}* (`{job.job_id}`) runs on plan `{esc(plan, 64)}`, which ends "
        f"{when(ends, entry.at)}, before its max_runtime runs out: SageMaker begins stopping the jobs on the plan "
        f"{duration(TERMINATION_LEAD.total_seconds())} before then ({stops:%H:%M} UTC); if it is still running then, it stops unfinished."
    ]
    checkpoint = job.job_args.CheckpointConfig
    if checkpoint is not None:
        lines.append(
            f"Its checkpoints (`/opt/ml/checkpoints`) are copied to `{esc(checkpoint.S3Uri, 300)}`: write one before "
            f"{stops:%H:%M} UTC; a new attempt finds them there."
        )
    else:
        lines.append("It saves no checkpoints (`checkpoint=s3://…`): whatever it has not written to its output by then is lost.")
    if job.plan_fallback:
        lines.append("With `plan_fallback=ondemand`, Trainbot then runs it again on on-demand capacity.")
    else:
        lines.append("It then ends Stopped: retry it on a later plan, or with `plan_fallback=ondemand`; an admin may extend the plan instead (AWS takes extensions until an hour before the end).")
    return "\n".join(lines)


# --- thread replies ---------------------------------------------------------------------------


def _attempts_at(job: Job, at: datetime) -> list[Attempt]:
    return [a for a in job.attempts if a.claimed_at <= at]


def _entry(job: Job, seq: int) -> HistoryEntry:
    entry = job.entry(seq)
    assert entry is not None, "the dispatcher skips compacted entries"
    return entry


def thread_reply(job: Job, seq: int, *, mention_owner: bool = True, region: str = "") -> str:
    """The reply for status change ``seq``. Terminal replies say why and (``mention_owner``) name
    the owner with a live mention."""
    entry = _entry(job, seq)
    status = entry.to_status
    reason = reason_text(entry.reason) if entry.reason else ""
    attempts = _attempts_at(job, entry.at)
    attempt = attempts[-1] if attempts else None
    head = f"{EMOJI[status]} *{status.value}*"
    if status is S.NEW:
        return f"{head}: {esc(job.name, 80)} is queued (`{job.job_id}`)"
    if status is S.LAUNCHED:
        line = f"{head}: attempt {attempt.number if attempt else len(attempts)} created as `{attempt.name if attempt else job.job_id}`"
        if job.fallback_types:
            # Which type it runs on, and why it changed: the launcher's reason says both.
            line = f"{head}: attempt {attempt.number if attempt else len(attempts)}: {reason or 'on ' + job.instance_type_of(attempt)}"
        return line
    if status is S.IN_PROGRESS:
        return f"{head}: training has started" + (f" ({reason})" if reason else "")
    if status is S.STOPPING:
        return f"{head}: " + (reason or "stop requested")
    if status is S.RETRYING:
        return f"{head}: {retry_line(job, seq)}" + _ran_on(job, attempt) + _with_tail(attempt, region)
    owner = mention(job.owner.user_id) if mention_owner else ""
    head = f"{head} {owner}".rstrip()
    if status is S.COMPLETED:
        billable = attempt.billable_seconds if attempt else None
        took = _took(attempt)
        extra = " · ".join(p for p in (f"took {took}" if took else "", f"billable {duration(billable)}" if billable else "") if p)
        return f"{head}: *{esc(job.name, 80)}* finished" + (f" ({extra})" if extra else "") + _ran_on(job, attempt) + _results(job)
    if status is S.STOPPED:
        who = stopped_by(job)
        if who and not _STOPPED_BY.match(entry.reason or ""):
            # The monitor ends it "as asked": the Stopping entry before says who asked.
            reason = f"stopped by {who}"
        if reason.startswith("stopped by "):
            return f"{head}: *{esc(job.name, 80)}* was {reason}" + _ran_on(job, attempt)  # not "was stopped: stopped by"
        return f"{head}: *{esc(job.name, 80)}* was stopped" + (f": {reason}" if reason else "") + _ran_on(job, attempt)
    # Failed
    failure = attempt.failure_class.value if attempt and attempt.failure_class else "error"
    return f"{head}: *{esc(job.name, 80)}* failed ({failure})" + (f": {reason}" if reason else "") + _ran_on(job, attempt) + _with_tail(attempt, region)


def live_metrics_line(job: Job) -> str:
    """While the job runs: its metrics' latest values and when they were read ('' when there
    are none yet). A time, not an age: the card stays true without being updated."""
    attempt = job.current_attempt
    if job.status not in (S.IN_PROGRESS, S.STOPPING) or attempt is None or not attempt.metrics:
        return ""
    at = f" (at {attempt.metrics_at:%H:%M} UTC)" if attempt.metrics_at else ""
    return f":bar_chart: Latest metrics: {metrics_text(attempt.metrics)}{at}"


def metrics_text(metrics: Mapping[str, float] | None, limit: int = 8) -> str:
    """``name value · …``: a job's metric values, the first ``limit`` by name."""
    items = sorted((metrics or {}).items())
    shown = " · ".join(f"{esc(name, 40)} {number(value)}" for name, value in items[:limit])
    return shown + (f" · …{len(items) - limit} more" if len(items) > limit else "")


def number(value: float) -> str:
    """A metric value, short: 4 significant digits."""
    return f"{value:.4g}"


def _results(job: Job) -> str:
    """A completed job's final metrics and where its model is."""
    lines = []
    if job.final_metrics:
        lines.append(f"Final metrics: {metrics_text(job.final_metrics)}")
    if job.model_artifact:
        lines.append(f"Model: `{esc(job.model_artifact, 300)}`")
    return "".join("\n" + line for line in lines)


def _with_tail(attempt: Attempt | None, region: str) -> str:
    text = log_tail_text(attempt, region) if attempt is not None and region else ""
    return "\n" + text if text else ""


def _ran_on(job: Job, attempt: Attempt | None) -> str:
    """For a job with a fallback list: the type the attempt that just ended ran on."""
    if not job.fallback_types or attempt is None or attempt.launched_at is None:
        return ""
    return f" (attempt {attempt.number} ran on `{job.instance_type_of(attempt)}`)"


def retry_line(job: Job, seq: int) -> str:
    """"attempt 3 (algorithm retry 2 of 3) in 8 min: AlgorithmError…": the next attempt, the
    algorithm retries it spends of the job's budget, when, and why."""
    entry = job.entry(seq)
    assert entry is not None, "the dispatcher skips compacted entries"
    at = _attempts_at(job, entry.at)
    done = at[-1].number if at else 0
    line = f"attempt {done + 1}"
    if at and at[-1].failure_class is FailureClass.ALGORITHM:
        # Only algorithm errors spend the budget (capacity retries are free: no "of N" that grows).
        used = min(job.retry_budget, sum(1 for a in at if a.failure_class is FailureClass.ALGORITHM))
        line += f" (algorithm retry {used} of {job.retry_budget})"
    latest_retry = job.history[-1].seq == seq
    if latest_retry and job.next_attempt_at is not None:
        line += f" in {duration(max(0.0, (job.next_attempt_at - entry.at).total_seconds()))}"
    if entry.reason:
        line += f": {reason_text(entry.reason, 300)}"
    checkpoint = job.job_args.CheckpointConfig
    plan_ended = bool(at) and at[-1].failure_class is FailureClass.PLAN_ENDED
    if (job.job_args.EnableManagedSpotTraining or plan_ended) and checkpoint is not None:
        line += f"\nattempt {done + 1} resumes from checkpoints at `{esc(checkpoint.S3Uri, 300)}`"
    return line


def _took(attempt: Attempt | None) -> str:
    if attempt and attempt.started_at and attempt.ended_at:
        return duration((attempt.ended_at - attempt.started_at).total_seconds())
    return ""


# --- /train status ----------------------------------------------------------------------------

OUTCOME_WORDS = {
    AttemptOutcome.PENDING: "being created",
    AttemptOutcome.RUNNING: "running",
    AttemptOutcome.COMPLETED: "completed",
    AttemptOutcome.FAILED: "failed",
    AttemptOutcome.STOPPED: "stopped",
    AttemptOutcome.NOT_STARTED: "refused by SageMaker, never created",
}
FAILURE_WORDS = {
    FailureClass.CAPACITY: "no capacity",
    FailureClass.QUOTA: "quota in use",
    FailureClass.THROTTLING: "SageMaker error",
    FailureClass.UNKNOWN: "outcome unknown",
    FailureClass.ALGORITHM: "training code failed",
    FailureClass.USER: "bad configuration",
    FailureClass.STOPPED: "stopped on request",
    FailureClass.PLAN_ENDED: "stopped by its plan's end",
}


def status_card(job: Job, region: str, now: datetime) -> dict[str, Any]:
    """The full picture: status, every attempt with its reason and durations, billable time,
    and links to the SageMaker console and the CloudWatch logs."""
    card = job_card(job, region)
    blocks = [card["blocks"][0]]
    rows = []
    total_billable = sum(a.billable_seconds or 0 for a in job.attempts)
    for attempt in job.attempts[-10:]:
        started = attempt.started_at or attempt.launched_at
        end = attempt.ended_at or (now if attempt.outcome.value in ("running", "pending") else None)
        ran = duration((end - started).total_seconds()) if started and end else "–"
        why = f" · {FAILURE_WORDS[attempt.failure_class]}" if attempt.failure_class else ""
        reason = f": {esc(attempt.reason, 200)}" if attempt.reason else ""
        created = attempt.outcome is not AttemptOutcome.NOT_STARTED
        rows.append(
            f"*{attempt.number}.* `{attempt.name}` {OUTCOME_WORDS[attempt.outcome]}{why} · ran {ran}"
            + (f" · on `{job.instance_type_of(attempt)}`" if job.fallback_types else "")
            + (f" · billable {duration(attempt.billable_seconds)}" if attempt.billable_seconds else "")
            + reason
            # SageMaker has no page nor log for an attempt it refused to create.
            + (f" · <{console_url(region, attempt.name)}|console> · <{logs_url(region, attempt.name)}|logs>" if created else "")
        )
    # Within Slack's 4,000-character guidance: the header, then the newest attempts and the
    # newest history entries, each in its own share.
    blocks.append(_section(_newest_rows(rows, job.attempt_count, room=STATUS_SHARE)))
    age = duration((now - job.created_at).total_seconds())
    facts = [f"submitted {age} ago", f"billable {duration(total_billable) if total_billable else '–'}"]
    if job.status is S.RETRYING and job.next_attempt_at:
        facts.append(f"next attempt in {duration(max(0.0, (job.next_attempt_at - now).total_seconds()))}")
    # N algorithm errors spent N retries, but the one that exhausted the budget retried nothing.
    facts.append(f"algorithm retries used {min(job.algorithm_failures, job.retry_budget)} of {job.retry_budget}")
    if job.preset:
        facts.append(f"preset {esc(job.preset, 40)}")
    blocks.append(_context(" · ".join(facts)))
    results = [f"*Hyperparameters*: {_hp(job, limit=20)}"] if job.job_args.HyperParameters else []
    running = live_metrics_line(job)
    if running:
        results.append(running)
    if job.final_metrics:
        results.append(f"*Final metrics*: {metrics_text(job.final_metrics, limit=20)}")
    if job.model_artifact:
        results.append(f"*Model*: `{esc(job.model_artifact, 300)}`")
    if results:
        blocks.append(_section(cut("\n".join(results), STATUS_SHARE)))
    history = [
        f"{h.at:%m-%d %H:%M} {h.to_status.value}" + (f" ({reason_text(h.reason, 120)})" if h.reason else "")
        for h in job.history[-8:]
    ]
    # The newest entries that fit whole: a cut line could break an escape and lose the latest.
    blocks.append(_context("\n".join(_fit_newest(history, STATUS_SHARE))))
    blocks.extend(b for b in card["blocks"][1:] if b["type"] == "actions")
    return {"text": card["text"], "blocks": blocks}


# --- /train list ------------------------------------------------------------------------------


STATUS_SHARE = 1400  # characters of a status card for its attempts, and as many for its history


def _newest_rows(rows: list[str], total: int, room: int = MAX_SECTION - 80) -> str:
    """The attempts section: as many of the newest rows as fit whole (a row is never cut, so
    no link or entity is broken), oldest first, with a note of how many earlier ones are left
    out."""
    kept = _fit_newest(rows, room)
    if not rows:
        return "*Attempts*\nnone yet: waiting for the launcher"
    left_out = total - len(kept)
    note = [f"_…{left_out} earlier attempt{'s' if left_out != 1 else ''}_"] if left_out else []
    return "*Attempts*\n" + "\n".join(note + kept)


def list_page(jobs: list[Job], *, scope: str, status: JobStatus | None, cursor: str | None) -> dict[str, Any]:
    title = ("Your jobs" if scope == "mine" else "Everyone's jobs") + (f" ({status.value})" if status else "")
    if not jobs:
        return {"text": f"{title}: none", "blocks": [_section(f"*{title}*: none found")]}
    lines = [
        f"{EMOJI[j.status]} `{j.job_id}` *{esc(j.name, 60)}* {j.status.value} · `{j.job_args.instance_type}`"
        + (f" · {mention(j.owner.user_id)}" if scope == "all" else "")
        + f" · {j.created_at:%Y-%m-%d %H:%M}"
        for j in jobs
    ]
    blocks = [_section(f"*{title}*, newest first\n" + "\n".join(lines))]
    if cursor:
        value = json.dumps({"scope": scope, "status": status.value if status else None, "cursor": cursor})
        blocks.append({"type": "actions", "elements": [_button("Next page", LIST_MORE_ACTION, value)]})
    return {"text": title, "blocks": blocks}


# --- sweeps -----------------------------------------------------------------------------------


def sweep_root(name: str, owner_id: str, sweep_id: str, total: int, tally: Mapping[str, int] | None = None) -> dict:
    tally = dict(tally or {})
    ended = sum(tally.values())
    parts = [f"{EMOJI[S(k)] if k in S._value2member_map_ else ''} {k} {v}".strip() for k, v in sorted(tally.items())]
    status = f"{ended} of {total} ended" + (" · " + " · ".join(parts) if parts else "")
    text = f":test_tube: Sweep *{esc(name, 80)}* by {mention(owner_id)}: {total} jobs (`{sweep_id}`)\n{status}"
    blocks: list[dict[str, Any]] = [_section(text)]
    if ended < total:
        # While it runs: one press stops every job that has not ended (as /train stop sw-… does).
        blocks.append({"type": "actions", "block_id": f"sweep:{sweep_id}", "elements": [_button("Stop sweep", STOP_SWEEP_ACTION, sweep_id, style="danger")]})
    return {"text": esc(f"Sweep {name}: {ended} of {total} ended", 300), "blocks": blocks}


def sweep_stopped(sweep_id: str, stopped: int, ended: int) -> str:
    """The answer to stopping a sweep."""
    return f":octagonal_sign: Sweep `{esc(sweep_id, 40)}`: {stopped} job{'s' if stopped != 1 else ''} stopped" + (
        f"; {ended} had ended already" if ended else ""
    )


def sweep_confirm(name: str, size: int, pending_id: str, limit: int, estimate: Estimate | None = None) -> dict[str, Any]:
    text = f"This sweep *{esc(name, 80)}* makes *{size:,} jobs* (more than {limit:,})."
    if estimate is not None:
        text += f"\nEstimate: {describe(estimate)}."
    text += "\nRegister them all?"
    return {
        "text": f"Confirm a sweep of {size} jobs",
        "blocks": [
            _section(text),
            {
                "type": "actions",
                "elements": [
                    _button(f"Register {size:,} jobs", SWEEP_CONFIRM_ACTION, pending_id, style="primary"),
                    _button("Cancel", SWEEP_CANCEL_ACTION, pending_id),
                ],
            },
        ],
    }


def _hp(job: Job, limit: int = 6) -> str:
    return ", ".join(f"{esc(k, 40)}={esc(v, 40)}" for k, v in list(job.job_args.HyperParameters.items())[:limit])


def sweep_job_reply(job: Job, seq: int) -> str:
    """One ended sweep job (``notify=all``): no mention, the sweep's summary has it."""
    hp = _hp(job)
    return thread_reply(job, seq, mention_owner=False) + (f"\n_{hp}_" if hp else "")


def sweep_failure_line(job: Job, seq: int) -> str:
    """A failed (or stopped) sweep job as one digest line: name, status, hyperparameters, why."""
    entry = _entry(job, seq)
    hp = _hp(job)
    reason = reason_text(entry.reason, 200) if entry.reason else ""
    return f"*{esc(job.name, 80)}* {entry.to_status.value}" + (f" ({hp})" if hp else "") + (f": {reason}" if reason else "")


def sweep_digest(lines: list[str], upto: int) -> str:
    """A reply grouping failures ``upto - len(lines) + 1`` to ``upto`` of a sweep."""
    first = upto - len(lines) + 1
    return f":warning: Failures {first}–{upto} of this sweep:\n" + "\n".join(f"• {line}" for line in lines)


SUMMARY_CHARS = 3900  # Slack's guidance is 4,000 characters a message; a little room to spare


def sweep_summary(
    name: str,
    owner_id: str,
    total: int,
    tally: Mapping[str, int],
    failures: list[str],
    results: list[Job] | None = None,
    objective: Objective | None = None,
    *,
    unlisted: int = 0,
) -> str:
    """The sweep's one final reply: it mentions the owner, once. With its jobs (``results``)
    it is a results table, best first by ``objective``, cut to Slack's 4,000 characters.
    ``unlisted``: failures no digest told whose lines the sweep's record no longer keeps."""
    parts = " · ".join(f"{k} {v}" for k, v in sorted(tally.items()))
    failed = total - int(tally.get(S.COMPLETED.value, 0))
    head = ":white_check_mark:" if not failed else ":warning:"
    text = f"{head} {mention(owner_id)}: sweep *{esc(name, 80)}* has ended: {total} jobs · {parts}"
    # The failures no digest has named yet are named here, before the table: a digest names
    # every tenth, and the summary is the only place the rest are told.
    if failures or unlisted:
        shown = failures[:20]
        text += "".join(f"\n• {line}" for line in shown)
        if len(failures) + unlisted > len(shown):
            text += f"\n_…and {len(failures) + unlisted - len(shown)} more_"
    if results:
        return text + "\n" + results_table(results, objective, room=SUMMARY_CHARS - len(text) - 1)
    return text


def varying_hyperparameters(jobs: list[Job]) -> list[str]:
    """The hyperparameters whose values differ across ``jobs`` (a sweep's axes), in order."""
    keys: list[str] = []
    for job in jobs:
        keys.extend(k for k in job.job_args.HyperParameters if k not in keys)
    return [k for k in keys if len({job.job_args.HyperParameters.get(k) for job in jobs}) > 1]


def rank(jobs: list[Job], objective: Objective | None) -> list[Job]:
    """Best first by ``objective`` (jobs without its value last, by name); by name without one."""
    if objective is None:
        return sorted(jobs, key=lambda j: j.name)

    def value(job: Job) -> float | None:
        return (job.final_metrics or {}).get(objective.metric)

    scored = [j for j in jobs if value(j) is not None]
    scored.sort(key=lambda j: (-(value(j) or 0.0) if objective.maximize else (value(j) or 0.0), j.name))
    return scored + sorted((j for j in jobs if value(j) is None), key=lambda j: j.name)


def results_table(jobs: list[Job], objective: Objective | None, room: int = SUMMARY_CHARS) -> str:
    """One row per job: the hyperparameters that vary, status, duration and the objective's
    value; the top rows that fit in ``room`` characters, then "…and K more"."""
    axes = varying_hyperparameters(jobs)
    title = "*Results*" + (f", best first by {'highest' if objective and objective.maximize else 'lowest'} `{esc(objective.metric, 60)}`" if objective else "")
    rows = []
    for place, job in enumerate(rank(jobs, objective), start=1):
        hp = ", ".join(f"{esc(k, 40)}={esc(job.job_args.HyperParameters.get(k, '–'), 40)}" for k in axes)
        took = _took(job.current_attempt) or "–"
        cells = [f"{place}. *{esc(job.name, 60)}*", hp, job.status.value, took]
        if objective is not None:
            score = (job.final_metrics or {}).get(objective.metric)
            cells.append(f"{esc(objective.metric, 40)} {number(score) if score is not None else '–'}")
        rows.append(" · ".join(c for c in cells if c))
    kept: list[str] = []
    used = len(title)
    for index, row in enumerate(rows):
        more = len(rows) - index - 1
        tail = len(f"\n_…and {len(rows) - index} more_") if more else 0
        if used + 1 + len(row) + tail > room:
            break
        kept.append(row)
        used += 1 + len(row)
    lines = [title, *kept]
    if len(kept) < len(rows):
        lines.append(f"_…and {len(rows) - len(kept)} more_")
    return "\n".join(lines)


# --- answers ----------------------------------------------------------------------------------


HELP = """*Trainbot*: SageMaker training from Slack.
• `/train submit key=value …`: one job. Keys: `name`, `image`, `instance` (a fallback list `instance=ml.p5.48xlarge,ml.p4d.24xlarge`: first choice first, the next one with room when SageMaker has no capacity), `count`, `volume` (GB of storage per instance), `checkpoint` (`s3://…`: where /opt/ml/checkpoints is saved, resumed by every attempt), `input` (or `input.<channel>`), `output`, `role`, `max_runtime` (`1h`, `90m`, `3600`), `spot` (true/false, with `max_wait`), `priority` (0-9), `retries`, `notify` (all, failures or end: which changes get a thread reply), `stall_alert` (`45m`: one warning when the job writes no log line that long; `off`), `hp.<name>=<value>`, `preset=<name>`. Quote values with spaces.
  Spot: `spot=true` needs `max_wait` ≥ `max_runtime` (SageMaker's rule: spot capacity waits included). Without `checkpoint=` the job gets `<output>/<JobId>/checkpoints`, the same for every attempt: save checkpoints to /opt/ml/checkpoints and an interrupted job resumes from them; an interruption is retried for free.
  `{submit}`
• `/train submit`: the same as a form.
• `/train sweep … hp.lr=1e-5,3e-5 hp.batch=16,32`: one job per combination. `metric.<name>=<regex>` (submit too) reads a metric from the log as SageMaker does (the regex's first group); `objective=max:<name>` (or `min:`) ranks the sweep's final results table. `/train stop sw-…` stops a whole sweep.
• `/train status <JobId or name>` · `/train list [mine|all] [status=Failed]`
• `/train queue [instance=…] [page=2]`: the queue in launch order, and why each job waits
• `/train stop <JobId or name>` · `/train retry <JobId or name>` (a name means your newest job of that name)
• `/train preset save <name> key=value …` · `preset list` · `preset show <name>` · `preset delete <name>`
• `/train stats [mine|all|user=U0123ABCD] [days=14] [preset=nlp]`: outcomes, retries by cause, waits, run times and instance-hours, with a chart.
• `/train budget [team=nlp]`: your team's instance-hours this week against its budget.
  Presets hold team defaults (image, role, input, output…): `/train submit preset=nlp name=x hp.lr=3e-5`."""


def help_text(unknown: str = "") -> str:
    intro = f"I don't know `{esc(unknown, 40)}`. Here is what I do know:\n" if unknown else ""
    # Every ``<`` and ``>`` of the help is text (``<JobId>`` is a placeholder, not a link), so
    # the whole of it is escaped; the backticks are balanced per line (tests/unit/slack).
    return intro + esc(HELP.format(submit=SUBMIT_EXAMPLE), 4000)


def problems_text(problems: Iterable[str], usage: str = "") -> str:
    lines = "\n".join(f"• {_with_budget_owner(esc(p, 400))}" for p in list(problems)[:12])
    text = f":warning: That didn't work:\n{lines}"
    if usage:
        text += "\nThe right form:\n" + code_block(usage, 1500)
    return text


def retry_rejected(job_id: str, admin: str, note: str) -> str:
    """A retry of a job an admin rejected (issue 22): held means held until an admin decides."""
    why = f": _{esc(note, 300)}_" if note else ""
    return (
        f":no_entry: `{esc(job_id, 100)}` was rejected by {mention(admin)}{why}. A retry cannot undo an admin's "
        "decision: submit a changed job, or ask an admin."
    )


def retry_too_soon(job_id: str, when: str) -> str:
    """A retry of a job stopped while a launcher was creating its training job: that create may
    still land, so the retry waits until no launcher run can be creating it any more."""
    return (
        f":hourglass_flowing_sand: `{esc(job_id, 100)}` was stopped while SageMaker was being asked to start it, "
        f"and that request may still land. Try `/train retry` again in {when}: I'll stop whatever it started first."
    )


def refused_user() -> str:
    return ":no_entry: Sorry, you are not on Trainbot's list of users (TRAINBOT_ALLOWED_USERS). Ask an admin to add you."


def refused_team() -> str:
    return ":no_entry: Sorry, this Trainbot serves another Slack workspace."


def not_found(job_id: str) -> str:
    return f":mag: There is no job `{esc(job_id, 80)}`, by id or among your newest jobs' names. `/train list` shows yours."


def ambiguous_name(name: str, job_ids: list[str]) -> str:
    shown = ", ".join(f"`{job_id}`" for job_id in job_ids[:10])
    return f":mag: *{esc(name, 80)}* names {len(job_ids)} of your jobs that have not ended: {shown}. Say which by its id."


def not_authorized(why: str = "") -> str:
    """A refusal that tells the truth about who may do what: ``why`` is the refusing use
    case's own sentence ("only the sweep's author may confirm it", "only <@U…> (the owner) or
    an admin may change …"); a person it names stays a (silent, ephemeral) mention."""
    if not why:
        return ":lock: You may not do that."
    text = re.sub(r"&lt;@([UW][A-Z0-9]{2,20})&gt;", r"<@\1>", esc(why, 300))
    return f":lock: {text[:1].upper()}{text[1:].rstrip('.')}."


def illegal(action: str, job_id: str, status: str) -> str:
    hints = {
        "stop": "only queued or running jobs can be stopped",
        "retry": "only Failed or Stopped jobs can be retried",
    }
    return f":information_source: `{esc(job_id, 80)}` is {esc(status, 20)}: {hints.get(action, 'that is not possible now')}."


def unavailable() -> str:
    return ":hourglass: Trainbot could not reach its job store just now; nothing changed. Please try again in a minute."


def oops() -> str:
    return ":warning: Something went wrong on Trainbot's side; nothing was changed. Please try again."


def submitting(name: str) -> str:
    return f":inbox_tray: Registering *{esc(name, 80)}*…"


def submitted(job: Job, created: bool, estimate: Estimate | None = None) -> str:
    verb = "Registered" if created else "Already registered"
    if job.slack is not None and job.slack.thread_ts:
        follow = "its card follows every change and its thread gets what you'd act on."
    else:
        # No root was posted (a DM or channel the bot cannot post in): promise no thread.
        follow = f"I can't post its thread here, so `/train status {job.job_id}` shows how it goes."
    text = f":white_check_mark: {verb} *{esc(job.name, 80)}* as `{job.job_id}`; {follow}"
    if estimate is not None:
        text += f"\nEstimate: {describe(estimate)}."
    if job.is_held:
        text += "\n" + held_text(job)
    return text


def sweep_registering(name: str, size: int) -> str:
    return f":inbox_tray: Registering sweep *{esc(name, 80)}* ({size:,} jobs)…"


def sweep_registered(name: str, size: int, sweep_id: str, estimate: Estimate | None = None, held: bool = False) -> str:
    text = f":white_check_mark: Registered sweep *{esc(name, 80)}*: {size:,} jobs (`{sweep_id}`)."
    if estimate is not None:
        text += f"\nEstimate: {describe(estimate)}."
    if held:
        text += "\n:lock: Its jobs wait for an admin's approval before any is launched."
    return text


def sweep_expired() -> str:
    return ":hourglass: That sweep confirmation expired or was already used. Run `/train sweep …` again."


def sweep_already_confirmed() -> str:
    return ":white_check_mark: That sweep is already registered (or being registered); its jobs are announced in its thread."


def sweep_cancelled() -> str:
    return "Sweep cancelled: nothing was registered."


def changed(action: str, job: Job) -> str:
    return f"{EMOJI[job.status]} `{job.job_id}` is now *{job.status.value}* ({action} requested)."


def preset_list(presets: Mapping[str, str]) -> str:
    if not presets:
        return "No presets yet. `/train preset save <name> key=value …` makes one."
    lines = "\n".join(f"• `{esc(n, 40)}` by {mention(by)}" for n, by in sorted(presets.items()))
    return f"*Presets*\n{lines}"


def preset_show(name: str, fields: Mapping[str, str], creator: str) -> str:
    body = " ".join(f"{k[:60]}={_quote(v)[:300]}" for k, v in fields.items())
    return f"*Preset* `{esc(name, 40)}` by {mention(creator)}\n{code_block(body)}"


def preset_saved(name: str, created: bool) -> str:
    return f":floppy_disk: Preset `{esc(name, 40)}` {'saved' if created else 'updated'}."


def preset_deleted(name: str) -> str:
    return f":wastebasket: Preset `{esc(name, 40)}` deleted."


def preset_missing(name: str) -> str:
    return f":mag: There is no preset `{esc(name, 40)}`. `/train preset list` shows them."


def preset_not_yours(name: str, creator: str) -> str:
    return f":lock: Preset `{esc(name, 40)}` belongs to {mention(creator)}; only they or an admin may change it."


def _quote(value: str) -> str:
    return f'"{value}"' if (" " in value or not value) else value


# --- /train stats -----------------------------------------------------------------------------


def stats_whose(scope: str, user_id: str | None, preset: str | None, requester: str | None = None) -> str:
    """Whose jobs a stats answer covers; ``requester``: the answer is in the channel, where
    "your" would mean the reader, so "mine" names the requester."""
    if scope == "mine" and requester:
        scope, user_id = "user", requester
    who = {"mine": "Your jobs", "all": "Everyone's jobs"}.get(scope) or f"Jobs of {mention(user_id or '')}"
    return who + (f" with preset `{esc(preset, 40)}`" if preset else "")


def stats_working(days: int) -> str:
    return f":bar_chart: Working out the last {days} day{'s' if days != 1 else ''}…"


def stats_posted(*, charted: bool) -> str:
    return ":bar_chart: Posted in the channel" + ("; the chart follows in its thread." if charted else ".")


def stats_not_shared() -> str:
    return ":bar_chart: I can't post in this channel, so here are the numbers for you alone; invite me (`/invite @Trainbot`) for the chart."


def _hours(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:,.2f}"


def stats_summary(
    stats: Any, *, scope: str, user_id: str | None, preset: str | None, days: int, requester: str | None = None
) -> dict[str, Any]:
    """The Block Kit answer to `/train stats`: what the window covers, outcomes, retries by
    cause, queue wait and run time (median / p90), instance-hours, slowest-to-start types.
    ``requester``: posted in the channel (the chart follows in its thread), not to them alone."""
    title = f"{stats_whose(scope, user_id, preset, requester)}, last {days} day{'s' if days != 1 else ''}"
    rate = "–" if stats.success_rate is None else f"{stats.success_rate:.0%}"
    statuses = " · ".join(
        f"{EMOJI.get(JobStatus(name), '')} {name} {count}" for name, count in stats.by_status.items()
    )
    unfinished = getattr(stats, "unfinished", None)
    if unfinished:
        # From the rollup's tallies: created and not finished, whatever their status now.
        statuses += f" · :hourglass_flowing_sand: not finished yet {unfinished:,}"
    causes = " · ".join(f"{cause} {count}" for cause, count in stats.retries_by_cause.items())
    hours = " · ".join(f"`{t}` {_hours(h)}" for t, h in list(stats.instance_hours.items())[:8]) or "none"
    slow = " · ".join(f"`{s.instance_type}` {duration(s.median_wait)}" for s in stats.slowest_to_start) or "–"
    wait, run = stats.queue_wait, stats.run_time
    fields = [
        f"*Jobs*\n{stats.total:,} ({stats.finished:,} finished)",
        f"*Success rate*\n{rate} of finished",
        f"*Queue wait* (median / p90)\n{duration(wait.median)} / {duration(wait.p90)}",
        f"*Run time* (median / p90)\n{duration(run.median)} / {duration(run.p90)}",
    ]
    blocks: list[dict[str, Any]] = [
        _section(f":bar_chart: *{title}*"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
        _section(
            f"*By status*: {statuses or 'none'}\n*Retries by cause* ({stats.total_retries:,}): {causes}\n"
            f"*Instance-hours*: {hours}\n*Slowest to start*: {slow}"
        ),
        _context(esc(stats.coverage(), 600)),
    ]
    plans = getattr(stats, "plan_hours", None)
    if plans:
        blocks.insert(-1, _section(plan_hours_text(plans)))
    spent = getattr(stats, "spend", None)
    if spent is not None and spent.instance_hours:
        blocks.insert(-1, _section(spend_text(spent)))
    return {"text": f"{title}: {stats.total} job{'s' if stats.total != 1 else ''}, success rate {rate}", "blocks": blocks}


def plan_hours_text(rows: Any) -> str:
    """Training plans over the window: instance-hours used against bought, per plan (top 8)."""

    def row(line: Any) -> str:
        if line.bought is None:
            return f"`{esc(line.plan, 64)}` {_hours(line.used)} of ? (plan unknown)"
        share = f" ({line.share:.0%})" if line.share is not None else ""
        return f"`{esc(line.plan, 64)}` {_hours(line.used)} of {_hours(line.bought)}{share}"

    return "*Training plans* (instance-hours used of bought): " + " · ".join(row(line) for line in rows[:8])


def spend_text(spent: Any) -> str:
    """Billed spend of the window by user, team and instance type (top 8 each; a preset's stats keep no spend by user or team)."""

    def row(lines: Any, name: Any) -> str:
        return " · ".join(
            f"{name(line.name)} {hours_text(line.instance_hours)} h"
            + (f" ({money_text(line.money, spent.currency)})" if line.money is not None else "")
            for line in lines[:8]
        )

    owners = f"*By user*: {row(spent.by_user, mention)}\n*By team*: {row(spent.by_team, team_label)}\n" if spent.by_user else ""
    return f"*Spend* (billed): {esc(spent.text(), 100)}\n{owners}*By instance type*: {row(spent.by_type, lambda n: f'`{n}`')}"


def with_budget(summary: dict[str, Any], check: Any) -> dict[str, Any]:
    """A stats answer with the asker's team's week against its budget (None: no budgets)."""
    if check is None:
        return summary
    blocks = list(summary["blocks"])
    blocks.insert(-1, _section(budget_text(check)))
    return {**summary, "blocks": blocks}


def stats_chart_title(scope: str, user_id: str | None, preset: str | None, days: int) -> str:
    """The chart file's title: plain text in Slack (no mention is shown there), so the id."""
    who = {"mine": "my jobs", "all": "all jobs"}.get(scope) or f"jobs of {user_id}"
    return f"Trainbot stats: {who}" + (f", preset {preset}" if preset else "") + f", last {days} day{'s' if days != 1 else ''}"


def stats_chart_caption(stats: Any, *, scope: str, user_id: str | None, requester: str, preset: str | None, days: int) -> str:
    """The chart's one-line caption in the summary's thread (seen by the whole channel, so
    "mine" names the requester): what it shows, whose jobs, and the window's two headline numbers."""
    whose = "everyone's jobs" if scope == "all" else f"jobs of {mention(user_id if scope == 'user' and user_id else requester)}"
    whose += f" with preset `{esc(preset, 40)}`" if preset else ""
    done = "none finished yet" if stats.success_rate is None else f"{stats.success_rate:.0%} of finished completed"
    return (
        f":bar_chart: Jobs per day by outcome, {whose}, last {days} day{'s' if days != 1 else ''}: "
        f"{stats.total:,} job{'s' if stats.total != 1 else ''}, {done}"
    )


def stats_chart_alt_text(stats: Any, days: int) -> str:
    """For screen readers (files.getUploadURLExternal's ``alt_txt``): the chart in words."""
    by_status = ", ".join(f"{name} {count}" for name, count in stats.by_status.items())
    window = f"the last {days} days" if days != 1 else "the last day"
    return f"Stacked bar charts of {window}: jobs per day by outcome ({by_status}), retries per day by cause."


# --- the submit modal -------------------------------------------------------------------------

# Every field the command takes, in the form's words. Each: block id (the grammar's key), label,
# hint (grey text under the input: guidance that cannot be mistaken for a filled-in value, so no
# placeholders), optional. The command's required keys are required here (``optional: False``):
# Slack then refuses an empty one itself, and marks every other field "(optional)".
MODAL_FIELDS = (
    ("name", "Name", "Letters, digits, '.', '-' or '_'; the job id starts with it.", False),
    ("preset", "Preset", "A team preset's name: its values fill the optional fields you leave empty.", True),
    ("image", "Image", "The training container's ECR image URI.", False),
    ("instance", "Instance type", "A SageMaker training type such as ml.g5.xlarge, or a fallback list, first choice first: ml.p5.48xlarge,ml.p4d.24xlarge (at most 4).", False),
    ("count", "Instance count", "How many instances; 1 when empty.", True),
    ("volume", "Volume (GB per instance)", "Storage per instance; SageMaker's default when empty.", True),
    ("input", "Input (S3)", "The S3 URI of the training data (channel \"train\").", True),
    ("output", "Output (S3)", "The S3 URI under which the model and checkpoints are saved.", False),
    ("role", "Role ARN", "The SageMaker execution role the job runs as.", False),
    ("max_runtime", "Max runtime", "How long one attempt may run: 1h, 90m, 1h30m or seconds.", True),
    ("spot", "Spot", "true for managed spot training (cheaper, may be interrupted); needs Max wait.", True),
    ("max_wait", "Max wait (spot)", "Spot only: how long to wait for spot capacity, run time included; at least Max runtime.", True),
    ("checkpoint", "Checkpoint (S3)", "Where /opt/ml/checkpoints is saved; every attempt resumes from it. Empty: under Output.", True),
    ("priority", "Priority", "0 (lowest) to 9 (highest).", True),
    ("retries", "Retries", "How often an algorithm error is retried (0 to 10); 2 when empty.", True),
    ("notify", "Thread replies", "all, failures or end: which changes get a reply in the job's thread.", True),
    ("stall_alert", "Stall alert", "Warn once when the job writes no log line this long (45m), or off.", True),
    ("hp", "Hyperparameters", "One name=value per line.", True),
)


def submit_modal(channel_id: str) -> dict[str, Any]:
    blocks = []
    for key, label, hint, optional in MODAL_FIELDS:
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value"}
        if key == "hp":
            element["multiline"] = True
        blocks.append(
            {
                "type": "input",
                "block_id": key,
                "optional": optional,
                "label": {"type": "plain_text", "text": label},
                "element": element,
                "hint": {"type": "plain_text", "text": hint[:2000]},
            }
        )
    return {
        "type": "modal",
        "callback_id": SUBMIT_VIEW,
        "private_metadata": json.dumps({"channel": channel_id}),
        "title": {"type": "plain_text", "text": "Submit a training job"},
        "submit": {"type": "plain_text", "text": "Submit"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


# --- the cost guard: approvals and budgets ------------------------------------------------------


def approval_lines(job: Job) -> list[str]:
    """The card's lines about an approval hold: waiting (and why), or who decided."""
    approval = job.approval
    if approval is None:
        return []
    if approval.state is ApprovalState.PENDING:
        return [held_text(job)] if job.is_held else []
    who = mention(approval.decided_by or "")
    if approval.state is ApprovalState.APPROVED:
        return [f":unlock: Approved by {who}"]
    return [f":no_entry: Rejected by {who}: {esc(approval.note, 300)}"]


def held_text(job: Job) -> str:
    why = "; ".join(_with_budget_owner(esc(r, 200)) for r in (job.approval.reasons if job.approval else []))
    return ":lock: Waiting for an admin's approval" + (f" ({why})" if why else "") + "; it will not be launched before."


def approval_request(job: Job, estimate: Estimate) -> dict[str, Any]:
    """The card admins get for a held job: what it is, what it may cost, why it is held, and
    Approve / Reject (the value is only the job id: the listener checks who presses)."""
    args = job.job_args
    lines = [
        f":lock: *Approval needed*: *{esc(job.name, 80)}* `{job.job_id}` by {mention(job.owner.user_id)}",
        f"`{args.instance_type}` × {args.instance_count} · max run time {duration(args.StoppingCondition.MaxRuntimeInSeconds)}"
        + f" · {describe(estimate)}",
    ]
    if job.approval and job.approval.reasons:
        lines.append("Why: " + "; ".join(_with_budget_owner(esc(r, 200)) for r in job.approval.reasons))
    if job.sweep_id and job.approval is not None and job.approval.alone:
        lines.append(f"Another attempt of one job of sweep `{esc(job.sweep_id, 40)}`: Approve or reject applies to this job only.")
    elif job.sweep_id:
        lines.append(f"Approve or reject applies to every job of sweep `{esc(job.sweep_id, 40)}` ({estimate.jobs:,} jobs).")
    buttons = [
        _button("Approve", APPROVE_ACTION, job.job_id, style="primary"),
        _button("Reject", REJECT_ACTION, job.job_id, style="danger"),
    ]
    return {
        "text": esc(f"Approval needed: {job.name} ({job.job_id})", 300),
        "blocks": [_section("\n".join(lines)), {"type": "actions", "block_id": f"approve:{job.job_id}", "elements": buttons}],
    }


def reject_modal(job_id: str, channel_id: str = "") -> dict[str, Any]:
    """The modal a Reject press opens: the reason goes to the owner's thread and the history
    (``channel_id``: where the card was, for answers)."""
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW,
        "private_metadata": json.dumps({"job_id": job_id, "channel": channel_id}),
        "title": {"type": "plain_text", "text": "Reject a job"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "reason",
                "label": {"type": "plain_text", "text": f"Why is {job_id[:60]} rejected?"},
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 300},
            }
        ],
    }


def decided(action: str, job: Job, changed: bool) -> str:
    """The admin's answer after pressing Approve or Reject."""
    if changed:
        if action == "approve":
            told = " and its owner will be told in its thread" if job.slack is not None and job.slack.channel_id else ""
            return f":unlock: Approved `{job.job_id}`: it is queued for launch{told}."
        return f":no_entry: Rejected `{job.job_id}`: it is stopped, and its owner told why."
    approval = job.approval
    if approval is not None and approval.state is not ApprovalState.PENDING:
        verb = "approved" if approval.state is ApprovalState.APPROVED else "rejected"
        return f"Nothing changed: `{job.job_id}` was already {verb} by {mention(approval.decided_by or '')}."
    return f"Nothing changed: `{job.job_id}` is *{job.status.value}* and not waiting for approval."


def approved_reply(job: Job, admin: str) -> str:
    """The owner's thread, once an admin approved their job."""
    return f":unlock: Approved by {mention(admin)}: *{esc(job.name, 80)}* is queued for launch {mention(job.owner.user_id)}"


def no_budgets() -> str:
    return ":money_with_wings: No budgets are configured (TeamBudgets / TRAINBOT_TEAM_BUDGETS)."


def budget_text(check: Any) -> str:
    """`/train budget`: the team's week against its budget: used (billed time of attempts that
    ended), reserved (estimates of accepted jobs not ended yet) and what is left."""
    used, budget = check.used_hours, check.budget_hours
    reserved = getattr(check, "reserved_hours", 0.0)
    who = f"*Team `{esc(check.team, 60)}`*" if not is_slack_user(check.team) else f"{mention(check.team)} *(in no team)*"
    head = f":money_with_wings: {who}, week {check.week}: {hours_text(used)} instance-hours used"
    if budget is None:
        return head + f", {hours_text(reserved)} reserved (no budget set)."
    left = max(0.0, budget - used - reserved)
    share = f" ({used / budget:.0%})" if budget else ""
    return (
        head + f" of {hours_text(budget)}{share}, {hours_text(reserved)} reserved by jobs not ended yet; "
        f"{hours_text(left)} left. Used is billed time of attempts that ended; reserved, each accepted job's max run time x instances."
    )
