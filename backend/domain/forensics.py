"""Failure forensics: what a failed attempt's log said, and a failure in plain words.

Pure: the log adapter (``backend.adapters.logs``) reads CloudWatch and builds a :class:`LogTail`;
the monitor stores it on the failed attempt (so the Slack reply and the SNS message of that
change tell the same lines, however often they are delivered); the renderers cut it to their
own budgets. Log text is untrusted: :func:`inert_line` is applied to every line before it is
kept, and the Slack renderer escapes it again for mrkdwn.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from backend.domain.logtail import LINE_CHARS, TailState
from backend.domain.terms import FailureClass

if TYPE_CHECKING:
    from backend.domain.model import Attempt

__all__ = ["TailState", "exit_code", "inert_line", "plain_failure", "wants_tail"]

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TAIL_HOSTS = 4  # hosts read for one tail (the ones that stopped writing first)


_ZWSP = "\u200b"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def inert_line(line: str) -> str:
    """One log line that can never mention, link or break out of a code block in Slack (nor
    carry terminal control codes): ``@here`` and ``<!channel>`` lose their meaning, ``://`` is
    split so nothing is auto-linked, triple backticks are broken, and the line is cut at
    LINE_CHARS. (The Slack renderer escapes ``& < >`` as well; SNS gets these lines as JSON.)"""
    text = _CONTROL.sub("", line.rstrip("\r\n")).replace("\t", "    ")
    if len(text) > LINE_CHARS:
        text = text[: LINE_CHARS - 1] + "…"
    text = text.replace("```", "`" + _ZWSP + "``")
    text = text.replace("@", "@" + _ZWSP).replace("<!", "<" + _ZWSP + "!")
    return re.sub(r"://", ":" + _ZWSP + "//", text)


def exit_code(reason: str) -> str:
    """The exit code SageMaker names in a FailureReason (``ExitCode 1``, ``exit code 137``)."""
    match = re.search(r"exit ?code[: ]+(-?\d+)", reason, re.IGNORECASE)
    return match.group(1) if match else ""


def wants_tail(failure_class: FailureClass, reason: str) -> bool:
    """Whether a failure points at the container, so its log is worth reading: the training code
    failed (AlgorithmError) or SageMaker blames the request for a container-side failure
    (ClientError: a bad image, an entry point that exits at once)."""
    if failure_class is FailureClass.ALGORITHM:
        return True
    prefix = reason.split(":", 1)[0].strip()
    return failure_class is FailureClass.USER and prefix in {"ClientError", "AlgorithmError"}


# --- failure classes in plain words ------------------------------------------------------------


def plain_failure(attempt: Attempt | None) -> str:
    """The card's last line: which kind of failure this is, in words a person acts on."""
    if attempt is None or attempt.failure_class is None:
        return ""
    cls, reason = attempt.failure_class, attempt.reason
    if cls is FailureClass.CAPACITY:
        if "spot" in reason.lower():
            return "Spot capacity was taken back: waiting for capacity, the retry is free and resumes from the checkpoints."
        return "No capacity for this instance type right now: waiting for capacity, the retry is free."
    if cls is FailureClass.QUOTA:
        return "The account's quota for this instance type is in use: waiting for room, the retry is free."
    if cls is FailureClass.ALGORITHM:
        return "Your training code failed: see the log tail in the thread."
    if cls is FailureClass.STOPPED:
        return "Stopped by someone."
    if cls is FailureClass.PLAN_ENDED:
        return "Stopped by the end of its training plan, not by a failure of your code."
    if cls is FailureClass.THROTTLING:
        return "SageMaker failed on its side: Trainbot retries."
    if cls is FailureClass.UNKNOWN:
        return "SageMaker lost track of the attempt: Trainbot tries again."
    if reason.startswith(("MaxRuntimeExceeded", "MaxWaitTimeExceeded")):
        return "It reached its run-time limit: raise max_runtime (spot: max_wait) or save checkpoints."
    return "Bad configuration: fix the request as SageMaker's message says, then retry."
