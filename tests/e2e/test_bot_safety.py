"""Safety at the edge: only requests Slack signed, recently, get in; hostile command text always
gets a polite ephemeral answer, writes nothing and is never echoed as live Slack markup."""

from __future__ import annotations

import json
import re
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.local.standins.slack_signing import slash_command_body
from tests.bot_fixtures import GOOD_SUBMIT, TEAM, USER, answer_text

_LIVE_MARKUP = re.compile(r"<[!@#]|<https?:|<mailto:")


def test_a_forged_signature_is_rejected_and_nothing_happens(bot_env, store):
    response = bot_env.send(slash_command_body(text=GOOD_SUBMIT, user_id=USER, team_id=TEAM), secret="not-the-secret")
    assert response["statusCode"] == 401
    assert bot_env.slack.calls == [] and bot_env.lam.invocations == []


def test_a_stale_signature_is_rejected_as_a_replay(bot_env, store):
    body = slash_command_body(text=GOOD_SUBMIT, user_id=USER, team_id=TEAM)
    response = bot_env.send(body, timestamp=int(time.time()) - 10 * 60)
    assert response["statusCode"] == 401
    assert bot_env.slack.calls == []


def test_a_tampered_body_is_rejected(bot_env, store):
    from infra.local.standins.lambda_invoke import lambda_context
    from infra.local.standins.slack_signing import lambda_url_event, signed_headers
    from tests.bot_fixtures import FUNCTION, SECRET, template_handler

    body = slash_command_body(text="help", user_id=USER, team_id=TEAM)
    headers = signed_headers(SECRET, body)
    event = lambda_url_event(body.replace("help", "stop"), headers)
    assert template_handler()(event, lambda_context(FUNCTION))["statusCode"] == 401


HOSTILE = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "<!channel>",
            "<!here> submit",
            "submit name=<!channel> image=<@U123>",
            "submit name=x hp.note=<https://evil.example|click me>",
            "status <@U123>",
            "stop <!everyone>",
            'submit name="unterminated',
            "submit name='x",
            "list status=<!channel>",
            "preset save <!channel> image=x",
            "preset show <https://evil|x>",
            "sweep name=x hp.lr=" + ",".join(["<!channel>"] * 50),
            "submit " + "hp.x=" + "A" * 5000,
            "\u202e\u0000submit\u200b name=\udcff".encode("utf-8", "replace").decode("utf-8", "replace"),
            "submit name=x image=&lt;!channel&gt;",
        ]
    ),
    st.builds(
        lambda verb, words: f"{verb} " + " ".join(words),
        st.sampled_from(["submit", "sweep", "status", "list", "stop", "retry", "preset save", "preset show", "nope"]),
        st.lists(
            st.one_of(
                st.text(max_size=30),
                st.sampled_from(["<!channel>", "<@U0ALICE>", "<https://evil|x>", '"', "'", "=", "hp.", "input."]),
                st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["name", "image", "hp.lr", "count", "max_runtime"]), st.text(max_size=20)),
            ),
            max_size=8,
        ),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE)
def test_hostile_text_gets_a_polite_ephemeral_answer_writes_nothing_and_echoes_no_live_markup(bot_env, store, text):
    bot_env.slack.reset()
    response = bot_env.command(text)

    assert response["statusCode"] == 200
    answers = [answer_text(response)] + [json.dumps(m) for m in bot_env.slack.ephemerals(user=USER)]
    if response["body"]:
        assert json.loads(response["body"]).get("response_type") == "ephemeral"
    for answer in answers:
        assert not _LIVE_MARKUP.search(json.loads(json.dumps(answer))), answer
    # Nothing was registered unless the text happened to be a complete, valid submit.
    assert not bot_env.slack.messages("C0TRAIN") or text.startswith(("submit", "sweep"))
    assert store.jobs_of_owner(_owner()).jobs == [] or text.startswith(("submit", "sweep"))


def _owner():
    from backend.domain.model import Owner

    return Owner(team_id=TEAM, user_id=USER)
