"""How much of a job's past its item keeps: the bounds that keep a job item far below DynamoDB's
400 KB item limit however often the job is retried (JobArgs alone may take ~300 KB at SageMaker's
own limits). Attempt numbers and history seqs keep counting past what is kept, so names stay
unique and the outbox stays ordered; SNS carries every change for a full record."""

from __future__ import annotations

ATTEMPTS_KEPT = 20
HISTORY_KEPT = 40  # the first entry (submitted) plus the newest 39
REASON_MAX = 500  # characters of a failure reason kept on an attempt or a history entry


def clip(text: str, limit: int = REASON_MAX) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
