"""A training job's log tail as an attempt keeps it (pure data; see backend.domain.forensics)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_pascal

from backend.domain.base import DomainModel

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


class HostTail(DomainModel):
    """The last lines of one host's stream (``<training-job>/algo-<n>-<epoch>``)."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    stream: str
    lines: list[str] = Field(default_factory=list)
    last_at: datetime | None = None


class LogTail(DomainModel):
    """The end of a training job's log, as stored on its failed attempt."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    state: TailState
    hosts: list[HostTail] = Field(default_factory=list)
    more_hosts: int = 0  # streams not read (beyond TAIL_HOSTS)
    note: str = ""  # why it could not be read

    def text(self, *, max_lines: int = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> str:
        """The tail as plain text (``[algo-1]`` headers when there are several hosts), cut to
        the newest lines that fit ``max_lines`` per host and ``max_bytes`` in all."""
        return "\n".join(render_hosts(self.hosts, max_lines=max_lines, max_bytes=max_bytes))


def render_hosts(hosts: list[HostTail], *, max_lines: int, max_bytes: int) -> list[str]:
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
