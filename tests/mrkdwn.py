"""A Python port of the local page's mrkdwn renderer (``infra/local/static/app.js``: ``fmt``,
``markup``, ``mrkdwn``), line for line, so tests can see text as the page (and, as far as the
page follows Slack, Slack) shows it: ``<…>`` becomes a link or a mention, backticks code."""

from __future__ import annotations

import html
import re


def _esc(s: str) -> str:
    return html.escape(s, quote=True).replace("&#x27;", "&#39;")


def _decode(s: str) -> str:
    return s.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def fmt(text: str) -> str:
    s = _esc(_decode(text))
    s = re.sub(r"```([\s\S]*?)```", lambda m: "<pre>" + m.group(1) + "</pre>", s)
    s = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", s)
    s = re.sub(r"(^|[\s(>])\*([^*\n]+)\*", r"\1<b>\2</b>", s)
    s = re.sub(r"(^|[\s(>])_([^_\n]+)_", r"\1<i>\2</i>", s)
    s = re.sub(r"(^|[\s(>])~([^~\n]+)~", r"\1<s>\2</s>", s)
    return s.replace("\n", "<br>")


def markup(inner: str) -> str:
    if inner.startswith("@"):
        return f'<span class="mention">@{_esc(inner[1:].split("|")[0])}</span>'
    if inner.startswith("#"):
        parts = inner.split("|")
        return f'<span class="mention">#{_esc(parts[1] if len(parts) > 1 else inner[1:])}</span>'
    if inner.startswith("!"):
        return f'<span class="mention">@{_esc(inner[1:].split("|")[0])}</span>'
    url, _, label = inner.partition("|")
    return f'<a href="{_esc(url)}" target="_blank" rel="noopener">{fmt(label or url)}</a>'


def mrkdwn(text: str) -> str:
    out, last = "", 0
    for m in re.finditer(r"<([^<>]+)>", text or ""):
        out += fmt(text[last : m.start()]) + markup(m.group(1))
        last = m.end()
    return out + fmt(text[last:])
