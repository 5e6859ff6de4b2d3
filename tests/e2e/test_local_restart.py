"""`trainbot local --data DIR` stopped and started again: the jobs come back, and so does the
channel the page shows. Slack keeps a workspace's messages while an app restarts, so local mode
keeps the Slack stand-in's workspace with the jobs table: each job's card and thread are where
its stored Slack ids say, and the bot goes on updating and replying to them."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import Any

from backend.adapters.slack.render import STOP_ACTION
from backend.domain.status import JobStatus
from infra.local import CHANNEL_ID, LocalOptions, LocalStack
from tests.e2e.local_loop import drive_until, until_status

S = JobStatus
SUBMIT = (
    "/train submit name={name} image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole "
    "hp.trainbot_standin_duration={duration}"
)


def _options(data_dir) -> LocalOptions:
    return LocalOptions(
        port=0, data_dir=data_dir, chaos=0.0, launcher_every=0.5, monitor_every=1.0, events_every=0.2,
        startup_seconds=0.5, run_seconds=2.0, stop_seconds=0.5, retry_base_seconds=1.0, retry_max_seconds=3.0,
        seed=3, log_transitions=False, write_connection_file=False,
    )


def _page_state(stack: LocalStack) -> dict[str, Any]:
    """What the page loads (its own route, as the browser reads it)."""
    with urllib.request.urlopen(stack.page_url + "page/state", timeout=10) as answer:
        return json.loads(answer.read())


def _cards(state: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [m for m in state["messages"] if f"*{name}*" in json.dumps(m.get("blocks"))]


def test_a_restart_with_data_shows_the_jobs_cards_and_threads_again_and_keeps_them_live(tmp_path):
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)
    with LocalStack(_options(tmp_path)) as first:
        first.page.command(SUBMIT.format(name="kept-done", duration=1), "U0YOU")
        first.page.command(SUBMIT.format(name="kept-running", duration=300), "U0YOU")
        done = until_status(first, "kept-done", S.COMPLETED)
        running = until_status(first, "kept-running", S.IN_PROGRESS)
        drive_until(
            first,
            "kept-done's Completed reply",
            lambda: any("Completed" in r["text"] for r in first.slack.thread(CHANNEL_ID, done.slack.thread_ts)[1:]),
            watch=["kept-done"],
        )
        before = _page_state(first)

    with LocalStack(_options(tmp_path)) as second:
        state = _page_state(second)
        # The channel shows what it showed: every card under its own ts, each thread whole.
        assert [m["ts"] for m in state["messages"]] == [m["ts"] for m in before["messages"]]
        [card] = _cards(state, "kept-done")
        assert card["ts"] == done.slack.thread_ts and "is *Completed*" in json.dumps(card["blocks"])
        assert [r["text"] for r in card["replies"]] == [r["text"] for r in _cards(before, "kept-done")[0]["replies"]]
        [card] = _cards(state, "kept-running")
        assert card["ts"] == running.slack.thread_ts

        # And they are live: Stop on the restored card stops the job, and the same card says so.
        answer = second.page.click(STOP_ACTION, running.job_id, running.slack.thread_ts, "U0YOU", block_id=f"job:{running.job_id}")
        assert answer["status"] == 200
        until_status(second, "kept-running", S.STOPPED)
        drive_until(
            second,
            "the restored card to show Stopped",
            lambda: "is *Stopped*" in json.dumps(second.slack.message(CHANNEL_ID, running.slack.thread_ts)["blocks"]),
            watch=["kept-running"],
        )
        assert len(_cards(_page_state(second), "kept-running")) == 1  # updated in place, not posted again
        assert any("Stopped" in r["text"] for r in second.slack.thread(CHANNEL_ID, running.slack.thread_ts)[1:])
        # New messages sort after the restored ones.
        second.page.command(SUBMIT.format(name="after-restart", duration=1), "U0YOU")
        new = drive_until(second, "a card for the new job", lambda: _cards(_page_state(second), "after-restart"), watch=["after-restart"])
        assert float(new[0]["ts"]) > max(float(m["ts"]) for m in before["messages"])
