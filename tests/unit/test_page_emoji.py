"""The local page shows every emoji shortcode the bot writes as Slack does (issue 24): a
shortcode missing from the page's table shows as text (`:money_with_wings:`), and a name that
is no Slack emoji (`aws`, from an ARN) must not be in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_JS = ROOT / "infra" / "local" / "static" / "app.js"
# A shortcode in a string the bot writes: `:name:` followed by a space or the string's end.
SHORTCODE = re.compile(r"(?<![\w:]):([a-z][a-z0-9_+-]*):(?=[\s\"'])")


def page_emoji() -> set[str]:
    table = re.search(r"const EMOJI = \{(.*?)\};", APP_JS.read_text(encoding="utf-8"), flags=re.S)
    assert table is not None
    return set(re.findall(r"([a-z0-9_]+):\s*\"", table.group(1)))


def bot_shortcodes() -> set[str]:
    sources = [*ROOT.glob("backend/**/*.py"), *ROOT.glob("bot/**/*.py"), *ROOT.glob("infra/local/*.py")]
    return {name for path in sources for name in SHORTCODE.findall(path.read_text(encoding="utf-8"))}


def test_every_shortcode_the_bot_writes_is_one_the_page_shows():
    written = bot_shortcodes()
    assert {"money_with_wings", "bar_chart", "lock", "white_check_mark"} <= written
    assert written - page_emoji() == set()


def test_the_page_has_no_emoji_for_what_is_part_of_an_arn():
    assert {"aws", "iam"}.isdisjoint(page_emoji())
