"""What the bot's listeners ask for, on top of the backend's services.

Listeners stay ten-line adapters: they parse (``bot.grammar``), call one method here or on
:attr:`BotService.submissions` (the submit/sweep use case the CLI calls too,
:mod:`backend.services.submit`) and render the result (``backend.adapters.slack.render``).
What is left here is reading and changing jobs the way the bot shows them: a page of a list
with a status filter, stop, retry and the stats.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from backend.domain.records import RecordKind
from backend.errors import JobNotFound

if TYPE_CHECKING:  # the services are imported with the container, on its first use
    from backend.bootstrap import Container
    from backend.config import Settings
    from backend.domain.charts import ChartRequest
    from backend.domain.cost import Estimate
    from backend.domain.model import Job
    from backend.domain.status import JobStatus
    from backend.domain.waiting import WaitReason
    from backend.services.budget import BudgetCheck, Decision
    from backend.services.jobs import Actor
    from backend.services.presets import PresetBook
    from backend.services.queue import QueuePage
    from backend.services.stats import Stats
    from backend.services.submit import SubmitService

LIST_PAGE = 10
_LIST_SCAN_PAGES = 5  # with a status filter, look through at most this many pages per answer


class BotService:
    def __init__(self, container: Container) -> None:
        # Nothing of the container is touched here: the bot wires it on first use (bot.handler),
        # and an ack that answers from the grammar alone (help) never uses it.
        self._c = container

    def __deepcopy__(self, memo: dict[int, Any]) -> BotService:
        # bolt deep-copies the request context for lazy listeners; the service (clients,
        # locks) is shared, never copied.
        return self

    @property
    def settings(self) -> Settings:
        return self._c.settings

    @property
    def submissions(self) -> SubmitService:
        return self._c.submissions

    @property
    def presets(self) -> PresetBook:
        return self.submissions.presets

    def now(self) -> datetime:
        return self._c.clock()

    # --- read and change ----------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        return self._c.jobs.get(job_id)

    def job_named(self, name: str, actor: Actor, *, live: bool = False) -> str:
        """The id of the actor's own job called ``name`` (JobNotFound, AmbiguousName)."""
        return self._c.jobs.named(name, actor.owner, live=live)

    def list_jobs(
        self, actor: Actor, scope: str, status: JobStatus | None, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        """A page of jobs, newest first; with a status filter, up to a few index pages are read
        to fill it, and the cursor continues where reading stopped."""
        found: list[Job] = []
        for _ in range(_LIST_SCAN_PAGES if status else 1):
            if scope == "all":
                page = self._c.jobs.list_all(limit=LIST_PAGE, cursor=cursor)
            else:
                page = self._c.jobs.list_owner(actor.owner, limit=LIST_PAGE, cursor=cursor)
            found.extend(j for j in page.jobs if status is None or j.status is status)
            cursor = page.cursor
            if cursor is None or len(found) >= LIST_PAGE:
                break
        return found, cursor

    def wait_reason(self, job: Job) -> WaitReason | None:
        """Why a queued job waits (None: it is not queued)."""
        return self._c.queue.reason(job.job_id, job)

    def queue_page(self, instance_type: str | None, page: int) -> QueuePage:
        return self._c.queue.page(instance_type, page)

    def plans_text(self, actor: Actor) -> str:
        """``/train plans``: the plans as the launcher last read them, the team's first."""
        from backend.adapters.slack.plans_view import plans_text

        book = self._c.plans
        return plans_text(book.board(), book.team_plan_names(actor.user_id), self.now())

    def stop(self, job_id: str, actor: Actor) -> Job:
        return self._c.jobs.stop(job_id, actor)

    def stop_sweep(self, sweep_id: str, actor: Actor) -> tuple[int, int]:
        """Stop every unfinished job of the sweep (owner or admin); (stopped, already ended).
        JobNotFound when there is no such sweep."""
        from backend.domain import sweeps

        record = self._c.store.get_record(RecordKind.SWEEP, sweep_id)
        if record is None:
            raise JobNotFound(sweep_id)
        return self._c.jobs.stop_many(sweeps.batch_job_ids(record), actor)

    def retry(self, job_id: str, actor: Actor) -> Job:
        return self._c.jobs.retry(job_id, actor)

    # --- the cost guard (issue 14) ---------------------------------------------------------------

    def estimate(self, jobs: list[Job]) -> Estimate:
        return self.submissions.estimate(job.job_args for job in jobs)

    def budget(self, actor: Actor, team: str | None) -> BudgetCheck | None:
        """A team's week against its budget (default: the asker's); None: budgets are off."""
        budgets = self._c.budgets
        if budgets is None:
            return None
        if team is None:
            return budgets.check(actor.user_id)
        from backend.domain.cost import iso_week
        from backend.services.budget import BudgetCheck

        week = iso_week(self.now())
        return BudgetCheck(team, week, budgets.used_hours(team, week), budgets.budget_of(team))

    def approve(self, job_id: str, actor: Actor) -> Decision:
        return self._c.approvals.approve(job_id, actor.user_id)

    def reject(self, job_id: str, actor: Actor, reason: str) -> Decision:
        return self._c.approvals.reject(job_id, actor.user_id, reason)

    # --- stats --------------------------------------------------------------------------------

    def stats(self, actor: Actor, scope: str, user_id: str | None, days: int, preset: str | None) -> Stats:
        """How the chosen jobs went over the last ``days`` days (reads only that window)."""
        return self._c.stats_reader.read(scope, actor.owner, user_id, days, preset)

    def request_chart(self, request: ChartRequest) -> bool:
        """Ask the chart function to draw the stats chart and post it where ``request`` says
        (the bot never draws: it carries no chart library); False when no chart function is
        configured. BackendUnavailable when Lambda did not take the request."""
        trigger = self._c.chart_trigger
        if trigger is None:
            return False
        trigger.request_chart(request)
        return True
