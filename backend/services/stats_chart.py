"""The chart function's one use case: draw the stats chart a request asks for and post it.

The bot answers ``/train stats`` with its summary in the channel and invokes the chart function
asynchronously with a :class:`backend.domain.charts.ChartRequest`; :meth:`StatsCharts.post`
then reads the same window (:class:`backend.services.stats.StatsReader`), draws it
(:func:`backend.services.chart.render`, matplotlib) and shares it in the summary's thread with a
one-line caption (the :class:`backend.ports.ChartSharer`, Slack).

Idempotent: Lambda may deliver an asynchronous event twice and retries a failed one. A
conditional put of a ``chart#<key>`` record (expiring) claims the request, so one request posts
one chart; a failure that may pass (Slack or the table unavailable) releases the claim and
raises, so Lambda's retry draws it again; one that cannot pass (the bot may not post in that
channel) keeps it, and the request ends there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from backend.domain.charts import ChartRequest
from backend.domain.records import RecordKind
from backend.errors import NotifierRejected
from backend.ports import ChartSharer, RecordStore
from backend.services.stats import StatsReader

logger = Logger(service="trainbot", child=True)

# Past the chart function's MaximumEventAgeInSeconds (template.yaml) and its retries: a
# duplicate delivered later than this is not expected.
CLAIM_TTL = timedelta(hours=2)


@dataclass(frozen=True)
class ChartOutcome:
    """What :meth:`StatsCharts.post` did: ``posted`` (with the file's id), ``duplicate`` (the
    request was posted or is being posted already) or ``refused`` (Slack will never take it)."""

    kind: str
    file_id: str = ""
    jobs: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"outcome": self.kind, "fileId": self.file_id, "jobs": self.jobs}


class StatsCharts:
    def __init__(
        self,
        records: RecordStore,
        reader: StatsReader,
        sharer: ChartSharer,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._records = records
        self._reader = reader
        self._sharer = sharer
        self._clock = clock

    def post(self, request: ChartRequest) -> ChartOutcome:
        from backend.services.chart import render  # matplotlib: only this function's artifact has it

        expires = int((self._clock() + CLAIM_TTL).timestamp())
        if not self._records.put_record(RecordKind.CHART, request.key, {"ExpiresAt": expires}, only_if_absent=True):
            logger.info("chart already posted or being posted: skipped", extra={"chart": request.key})
            return ChartOutcome("duplicate")
        try:
            stats = self._reader.read(request.scope, request.requester, request.user_id, request.days, request.preset)
            chart = render(stats)
            file_id = self._sharer.share_chart(request, stats, chart.png)
        except NotifierRejected as exc:
            logger.warning("Slack refused the chart; not retried", extra={"chart": request.key, "error": str(exc)})
            return ChartOutcome("refused")
        except Exception:
            self._records.delete_record(RecordKind.CHART, request.key)  # Lambda's retry may draw it
            raise
        return ChartOutcome("posted", file_id, stats.total)
