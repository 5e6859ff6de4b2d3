"""The stats chart into Slack: one PNG, in the stats summary's thread, with a one-line caption.

Slack's current upload flow, as ``slack_sdk``'s ``files_upload_v2`` makes it:
``files.getUploadURLExternal`` (filename, length, alt text), a POST of the bytes to the URL it
gives, then ``files.completeUploadExternal`` with ``channel_id``, ``thread_ts`` and
``initial_comment`` (the caption), which shares the file as a reply in that thread. Each needs
the ``files:write`` scope (infra/deploy/slack-app-manifest.yaml). Slack's refusals become
:class:`backend.errors.NotifierRejected` when no retry can help, else
:class:`backend.errors.NotifierUnavailable`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from backend.adapters.slack import render
from backend.adapters.slack.notifier import PERMANENT_ERRORS
from backend.errors import NotifierRejected, NotifierUnavailable

if TYPE_CHECKING:
    from backend.domain.charts import ChartRequest

FILENAME = "trainbot-stats.png"
# Refusals of an upload that no retry fixes, besides the posting ones (the workspace forbids
# uploads, or the app was installed without files:write).
UPLOAD_REFUSALS = frozenset(
    {"file_uploads_disabled", "file_uploads_except_images_disabled", "file_type_not_allowed", "file_upload_size_restricted", "missing_scope"}
)


class SlackChartSharer:
    """:class:`backend.ports.ChartSharer` over a ``slack_sdk.WebClient``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def share_chart(self, request: ChartRequest, stats: Any, png: bytes) -> str:
        from slack_sdk.errors import SlackApiError, SlackClientError

        caption = render.stats_chart_caption(
            stats, scope=request.scope, user_id=request.user_id, requester=request.requester.user_id,
            preset=request.preset, days=request.days,
        )
        try:
            answer = self._client.files_upload_v2(
                channel=request.channel_id,
                thread_ts=request.thread_ts,
                content=png,
                filename=FILENAME,
                title=render.stats_chart_title(request.scope, request.user_id, request.preset, request.days),
                alt_txt=render.stats_chart_alt_text(stats, request.days),
                initial_comment=caption,
            )
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else "?"
            if error in PERMANENT_ERRORS or error in UPLOAD_REFUSALS:
                raise NotifierRejected(f"Slack refused the chart: {error}") from exc
            raise NotifierUnavailable(f"Slack could not take the chart: {error}") from exc
        except (SlackClientError, OSError) as exc:  # URLError, timeouts, refused connections
            raise NotifierUnavailable(f"Slack could not be reached for the chart: {exc}") from exc
        files = answer.get("files") or [answer.get("file") or {}]
        return str(files[0].get("id", ""))
