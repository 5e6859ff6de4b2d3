"""`/train stats` at the unit level: grammar, the Block Kit summary, the listener's summary
post and chart request (fake client and bot), and a bot that never imports the chart library."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.adapters.slack import render
from backend.domain.spec import BadCommand
from backend.services.stats import Window, compute_stats
from bot import grammar
from bot.listeners import commands
from tests.stats_history import NOW, known_history


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stats", grammar.Stats("all", None, 14, None)),
        ("stats mine days=30", grammar.Stats("mine", None, 30, None)),
        ("stats user=<@U0ALICE|alice> preset=NLP", grammar.Stats("user", "U0ALICE", 14, "nlp")),
        ("stats user=W12AB days=366 all", grammar.Stats("all", None, 366, None)),  # the last scope word wins
    ],
)
def test_stats_commands_parse(text, expected):
    assert grammar.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stats days=0", "days: 0 is out of range"),
        ("stats days=367", "out of range"),
        ("stats user=bob", "is not a Slack member ID"),
        ("stats preset=<!channel>", "is not a preset name"),
        ("stats everything", "is not understood here"),
    ],
)
def test_malformed_stats_commands_name_the_problem_and_show_the_usage(text, problem):
    with pytest.raises(BadCommand) as caught:
        grammar.parse(text)
    assert problem in " ".join(caught.value.problems) and caught.value.usage == grammar.USAGE["stats"]


def test_help_mentions_stats():
    assert "/train stats" in render.help_text()


def _stats(jobs=None, **kw):
    return compute_stats(known_history() if jobs is None else jobs, Window.last_days(7, NOW), NOW, **kw)


def test_the_summary_shows_every_figure_and_what_the_window_covers():
    answer = render.stats_summary(_stats(retention_days=3), scope="user", user_id="U0ALICE", preset="nlp", days=7)
    blob = json.dumps(answer["blocks"], ensure_ascii=False)
    assert "Jobs of <@U0ALICE> with preset `nlp`, last 7 days" in blob
    assert "6 (3 finished)" in blob and "67% of finished" in blob
    assert "31 min / 1 h 36 min" in blob  # queue wait median / p90
    assert "capacity 1 · quota 1 · algorithm 1 · throttling 1" in blob
    assert "`ml.g5.xlarge` 2.00" in blob and "Slowest to start*: `ml.g5.2xlarge` 2 h 00 min" in blob
    assert "kept 3 days" in blob and "have expired" in blob
    assert answer["text"].endswith("6 jobs, success rate 67%")


def test_one_job_is_one_job_in_the_notification_text():
    """The text Slack shows in notifications (found by the simulator's read-only commands)."""
    answer = render.stats_summary(_stats(known_history()[:1]), scope="all", user_id=None, preset=None, days=7)
    assert ": 1 job, success rate" in answer["text"] and "1 jobs" not in answer["text"]


def test_an_empty_summary_has_dashes_not_errors():
    answer = render.stats_summary(_stats([]), scope="mine", user_id=None, preset=None, days=7)
    blob = json.dumps(answer["blocks"], ensure_ascii=False)
    assert "Your jobs, last 7 days" in blob and "0 (0 finished)" in blob and "– of finished" in blob


class _Client:
    """A WebClient that posts the summary (as Slack answers chat.postMessage) and refuses to
    upload anything: the bot never uploads the chart, the chart function does."""

    def __init__(self) -> None:
        self.posted: list[dict] = []

    def chat_postMessage(self, **kwargs):
        self.posted.append(kwargs)
        return {"ok": True, "ts": "1700000000.000200", "channel": kwargs["channel"]}

    def files_upload_v2(self, **kwargs):
        raise AssertionError("the bot must not upload the chart: the chart function does")


class _Bot:
    def __init__(self) -> None:
        self.asked: list = []
        self.charts: list = []

    def stats(self, actor, scope, user_id, days, preset):
        self.asked.append((actor.user_id, scope, user_id, days, preset))
        return _stats()

    def request_chart(self, request):
        self.charts.append(request)
        return True

    def budget(self, actor, team):
        return None  # budgets off


def _command(text: str, **extra) -> dict:
    return {"text": text, "team_id": "T1", "user_id": "U0ALICE", "channel_id": "C1", "trigger_id": "1.2.3", "response_url": "x", **extra}


def test_the_ack_answers_at_once_and_the_lazy_listener_posts_the_summary_and_asks_for_the_chart_in_its_thread():
    acks: list = []
    bot = _Bot()
    commands.acknowledge(ack=lambda **kw: acks.append(kw), command=_command("stats mine days=7"), context={"bot": bot}, client=None)
    assert "last 7 days" in acks[0]["text"] and bot.asked == []

    said: list = []
    client = _Client()
    commands.work(command=_command("stats mine days=7"), context={"bot": bot}, respond=lambda **kw: said.append(kw), client=client, body={"response_url": "x"})
    assert bot.asked == [("U0ALICE", "mine", None, 7, None)]
    (posted,) = client.posted
    assert posted["channel"] == "C1" and "Jobs of <@U0ALICE>, last 7 days" in json.dumps(posted["blocks"])
    (request,) = bot.charts
    assert request.thread_ts == "1700000000.000200" and request.channel_id == "C1" and request.key == "1.2.3"
    assert (request.scope, request.days, request.requester.user_id, request.requester.team_id) == ("mine", 7, "U0ALICE", "T1")
    assert said == [{"response_type": "ephemeral", "replace_original": True, "text": render.stats_posted(charted=True)}]


def test_where_the_bot_may_not_post_the_summary_goes_to_the_asker_and_no_chart_is_asked_for():
    from slack_sdk.errors import SlackApiError

    class Refusing(_Client):
        def chat_postMessage(self, **kwargs):
            raise SlackApiError("refused", {"ok": False, "error": "channel_not_found"})

    bot, said = _Bot(), []
    commands.work(command=_command("stats days=3"), context={"bot": bot}, respond=lambda **kw: said.append(kw), client=Refusing(), body={})
    assert bot.charts == []
    assert "Everyone's jobs, last 3 days" in json.dumps(said[0]["blocks"]) and said[0]["replace_original"] is True
    assert "invite me" in said[1]["text"]


def test_the_bots_cold_start_imports_neither_the_stats_service_nor_matplotlib():
    code = (
        "import sys, bot.handler, bot.app, bot.listeners.commands, bot.usecases, backend.adapters.slack.render, bot.grammar, "
        "backend.services.submit; "
        "leaked = [m for m in ('matplotlib', 'numpy', 'backend.services.stats', 'backend.services.chart') if m in sys.modules]; "
        "sys.exit(str(leaked) if leaked else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_whole_stats_answer_in_the_bot_loads_no_chart_code_it_only_asks_the_chart_function():
    """The lazy listener's whole `/train stats` run (stats read, summary posted, chart asked for)
    in a fresh interpreter, wired by the composition root over the in-memory store: the stats
    service is loaded, the chart module and matplotlib never are."""
    code = """
import json, sys
from backend.bootstrap import build
from backend.config import Settings
from bot.listeners import commands
from bot.usecases import BotService
from tests.fakes.memory_store import MemoryJobStore

asked = []
class Trigger:
    def request_chart(self, request):
        asked.append(request)
class Client:
    def chat_postMessage(self, **kwargs):
        return {"ok": True, "ts": "1.2"}
container = build(Settings(JOBS_TABLE_NAME="jobs"), store_override=MemoryJobStore(), notifiers=lambda store: [])
container.extras["chart_trigger"] = Trigger()
command = {"text": "stats all days=7", "team_id": "T1", "user_id": "U1", "channel_id": "C1", "trigger_id": "9.9"}
commands.work(command=command, context={"bot": BotService(container)}, respond=lambda **kw: None, client=Client(), body={})
assert [r.thread_ts for r in asked] == ["1.2"], asked
loaded = [m for m in ("backend.services.stats", "matplotlib", "numpy", "backend.services.chart") if m in sys.modules]
print(json.dumps(loaded))
"""
    root = Path(__file__).resolve().parents[3]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["backend.services.stats"]
