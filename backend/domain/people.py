"""How Trainbot names a person in the sentences its services write (history reasons, refusals,
budget lines), so that every surface shows people one way.

A Slack member id (``U…``/``W…``) is written as Slack's mention, ``<@U0123ABCD>``: Slack shows
it as the person's name (the Slack renderer, backend.adapters.slack.render, keeps exactly these
live after escaping everything else). Anything else (a CLI user's login name, a team) is plain
text. A team is not a person, except the "team of one" of a user in no team
(``TRAINBOT_USER_TEAMS``), which is keyed by that user's id and shown as them. Plain-text
surfaces (the CLI, a file title) show the id itself: :func:`plain`.
"""

from __future__ import annotations

import re

SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
# What a sentence marks as a member (an upper-case id): a login name (``alice``) stays as it is.
_MEMBER_ID = re.compile(r"^[UW][A-Z0-9]{1,20}$")
_MENTION = re.compile(r"<@([UW][A-Z0-9]{1,20})(?:\|[^>]*)?>")


def is_slack_user(name: str) -> bool:
    """Whether ``name`` is a Slack member id (a team of one is keyed by one)."""
    return bool(SLACK_USER.match(name))


def person(user_id: str) -> str:
    """A person in a sentence: ``<@U…>`` for a Slack member id, else the name as it is."""
    return f"<@{user_id}>" if _MEMBER_ID.match(user_id) else user_id


def team_words(team: str) -> str:
    """A budget's owner in a sentence: ``team `nlp``` or, for a user in no team, that user."""
    return f"{person(team)} (in no team)" if is_slack_user(team) else f"team `{team}`"


def plain(text: str) -> str:
    """``text`` for a plain-text surface: each ``<@U…>`` becomes the bare id."""
    return _MENTION.sub(r"\1", text)
