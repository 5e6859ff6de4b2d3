"""A training job's log tail as an attempt keeps it (see backend.domain.forensics): its sizes, its
states and how it is shown. The tail itself is part of the attempt (``backend.domain.model``'s
``LogTail`` and ``HostTail``); no pydantic here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

# What an attempt keeps: the last lines of each host's stream, at most this much in all. Slack's
# section text limit is 3,000 characters; the job item must stay far below 400 KB (bounds.py),
# so only the newest failed attempt keeps its tail.
TAIL_LINES = 20  # per host
TAIL_BYTES = 2400  # all hosts together, as stored and as shown in Slack
LINE_CHARS = 300  # one line (a 10 MB JSON log line must not eat the budget)
SNS_TAIL_LINES = 8
SNS_TAIL_BYTES = 800


class TailState(StrEnum):
    """What reading the log gave."""

    READ = "read"
    MISSING = "missing"  # no stream for the training job (it never started its container)
    EMPTY = "empty"  # streams, but no line in them
    UNREADABLE = "unreadable"  # throttled or refused: the reply says so and links the console


class Host(Protocol):
    """What :func:`render_hosts` reads of a host's tail (``backend.domain.model.HostTail``)."""

    @property
    def stream(self) -> str: ...

    @property
    def lines(self) -> list[str]: ...


def render_hosts(hosts: Sequence[Host], *, max_lines: int, max_bytes: int) -> list[str]:
    """Lines for ``hosts`` in order (the first one stopped writing first: it most likely failed
    first), each host's newest lines, within the byte budget; a host that does not fit at all is
    named with a pointer to the console."""
    out: list[str] = []
    used = 0
    several = len(hosts) > 1
    for host in hosts:
        header = [f"[{host_name(host.stream)}]"] if several else []
        lines = host.lines[-max_lines:]
        block = header + lines
        size = sum(len(line.encode()) + 1 for line in block)
        while lines and used + size > max_bytes:
            lines = lines[1:]
            block = header + (["…", *lines] if lines else [])
            size = sum(len(line.encode()) + 1 for line in block)
        if not lines:
            out.append(f"[{host_name(host.stream)}: more in the console]" if several else "[more in the console]")
            break
        out.extend(block)
        used += size
    return out


def host_name(stream: str) -> str:
    """``algo-2`` from ``<job>/algo-2-1700000000``."""
    leaf = stream.rsplit("/", 1)[-1]
    match = re.match(r"^(algo-\d+)", leaf)
    return match.group(1) if match else leaf
