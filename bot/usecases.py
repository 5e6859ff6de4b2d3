"""What the bot's listeners ask for, one function each, on top of the job service.

Listeners stay ten-line adapters: they parse (``bot.grammar``), call one method here and render
the result (``backend.adapters.slack.render``). This layer adds what is the bot's own business: presets merged
into a submit, sweeps expanded and registered under one thread root, large sweeps parked until
confirmed, and listing with a status filter. Idempotency keys come from Slack's payload (the
``trigger_id``), so a duplicated delivery registers nothing twice.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.domain.model import Job, SlackThread, new_job
from backend.domain.status import JobStatus
from backend.errors import InvalidRequest, NotAuthorized
from backend.ports import Registered
from backend.services.jobs import Actor
from bot.grammar import USAGE, JobSpec, job_spec, sweep_specs
from bot.presets import PresetBook

PENDING_SWEEP = "pending-sweep"
SWEEP_ROOT = "sweep-root"
PENDING_TTL_SECONDS = 3600
LIST_PAGE = 10
_LIST_SCAN_PAGES = 5  # with a status filter, look through at most this many pages per answer


class SweepExpired(InvalidRequest):
    """A sweep confirmation whose parked request is gone (used, cancelled or expired)."""

    def __init__(self) -> None:
        super().__init__(["that sweep confirmation expired or was already used"])


@dataclass(frozen=True)
class SweepRoot:
    channel: str
    ts: str
    name: str
    owner: str
    total: int


def sweep_id_for(token: str) -> str:
    """A sweep's id, derived from the request's trigger id (the same on every redelivery)."""
    return "sw-" + hashlib.sha256(token.encode()).hexdigest()[:16]


class BotService:
    def __init__(self, container) -> None:  # noqa: ANN001 - backend.bootstrap.Container
        self._c = container
        self.presets = PresetBook(container.store, is_admin=container.settings.is_admin)

    def __deepcopy__(self, memo: dict) -> BotService:
        # bolt deep-copies the request context for lazy listeners; the service (clients,
        # locks) is shared, never copied.
        return self

    @property
    def settings(self):
        return self._c.settings

    def now(self):
        return self._c.clock()

    # --- submit -------------------------------------------------------------------------------

    def job_spec(self, fields: dict[str, str]) -> JobSpec:
        """Validate a submit (preset merged in); BadCommand names what is wrong."""
        return job_spec(self.presets.merged(fields))

    def submit(self, spec: JobSpec, actor: Actor, channel_id: str | None, token: str) -> Registered:
        """Register the job (idempotent on ``token``); the notifier posts its thread root."""
        return self._c.jobs.submit(
            name=spec.name,
            job_args=spec.job_args,
            actor=actor,
            slack=SlackThread(channel_id=channel_id) if channel_id else None,
            priority=spec.priority,
            retry_budget=spec.retry_budget,
            client_token=token,
            preset=spec.preset,
        )

    # --- sweeps -------------------------------------------------------------------------------

    def sweep_specs(self, fields: dict[str, str], *, merged: bool = False) -> tuple[dict[str, str], list[JobSpec]]:
        """The merged fields and one spec per combination; refuses above the hard cap.
        ``merged``: the preset is merged in already (a parked sweep)."""
        merged = dict(fields) if merged else self.presets.merged(fields)
        return merged, sweep_specs(merged, self.settings.sweep_max_size, USAGE["sweep"])

    def needs_confirmation(self, size: int) -> bool:
        return size > self.settings.sweep_confirm_size

    def park_sweep(self, pending_id: str, fields: dict[str, str], actor: Actor, channel_id: str) -> None:
        """Keep a large sweep's (merged) fields until its owner confirms; expires in an hour."""
        self._c.store.put_record(
            PENDING_SWEEP,
            pending_id,
            {
                "Fields": fields,
                "Team": actor.team_id,
                "User": actor.user_id,
                "Channel": channel_id,
                "ExpiresAt": int(time.time()) + PENDING_TTL_SECONDS,
            },
        )

    def take_parked_sweep(self, pending_id: str, actor: Actor) -> tuple[dict[str, str], str]:
        """The parked sweep's fields and channel, for its owner only; SweepExpired if gone."""
        record = self._c.store.get_record(PENDING_SWEEP, pending_id)
        if record is None or int(record.get("ExpiresAt", 0)) < time.time():
            raise SweepExpired()
        if (record.get("Team"), record.get("User")) != (actor.team_id, actor.user_id):
            raise NotAuthorized("only the sweep's author may confirm it")
        return {str(k): str(v) for k, v in record["Fields"].items()}, str(record["Channel"])

    def drop_parked_sweep(self, pending_id: str, actor: Actor) -> None:
        self.take_parked_sweep(pending_id, actor)
        self._c.store.delete_record(PENDING_SWEEP, pending_id)

    def register_sweep(
        self,
        sweep_id: str,
        name: str,
        specs: list[JobSpec],
        actor: Actor,
        channel_id: str,
        post_root: Callable[[SweepRoot], str],
    ) -> list[str]:
        """Post the sweep's thread root once (``post_root`` returns its ts), then register every
        job in one batch under it. A redelivery finds the root and the batch already there."""
        root = self.sweep_root(sweep_id)
        if root is None:
            root = SweepRoot(channel_id, "", name, actor.user_id, len(specs))
            ts = post_root(root)
            root = SweepRoot(channel_id, ts, name, actor.user_id, len(specs))
            recorded = self._c.store.put_record(
                SWEEP_ROOT,
                sweep_id,
                {"Channel": root.channel, "Ts": root.ts, "Name": name, "Owner": actor.user_id, "Total": root.total},
                only_if_absent=True,
            )
            if not recorded:
                # A duplicate delivery posted its root first: every job goes under that one.
                root = self.sweep_root(sweep_id) or root
        now = self._c.clock()
        jobs: list[Job] = [
            new_job(
                name=spec.name,
                job_args=spec.job_args,
                owner=actor.owner,
                now=now,
                slack=SlackThread(channel_id=root.channel, thread_ts=root.ts),
                priority=spec.priority,
                retry_budget=spec.retry_budget,
                client_token=f"{sweep_id}/{index}",
                sweep_id=sweep_id,
                preset=spec.preset,
                prefix=self._c.jobs.job_id_prefix,
            )
            for index, spec in enumerate(specs)
        ]
        ids = self._c.jobs.submit_sweep(jobs, sweep_id)
        self._c.store.delete_record(PENDING_SWEEP, sweep_id)
        return ids

    def sweep_root(self, sweep_id: str) -> SweepRoot | None:
        record = self._c.store.get_record(SWEEP_ROOT, sweep_id)
        if record is None:
            return None
        return SweepRoot(
            str(record["Channel"]), str(record["Ts"]), str(record["Name"]), str(record["Owner"]), int(record["Total"])
        )

    # --- read and change ----------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        return self._c.jobs.get(job_id)

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

    def stop(self, job_id: str, actor: Actor) -> Job:
        return self._c.jobs.stop(job_id, actor)

    def retry(self, job_id: str, actor: Actor) -> Job:
        return self._c.jobs.retry(job_id, actor)

    # --- stats --------------------------------------------------------------------------------

    def stats(self, actor: Actor, scope: str, user_id: str | None, days: int, preset: str | None):  # noqa: ANN201
        """How the chosen jobs went over the last ``days`` days (reads only that window)."""
        from backend.services.stats import collect

        owner = actor.owner if scope == "mine" else (user_id if scope == "user" else None)
        return collect(self._c.store, owner, days, preset, self._c.clock(), retention_days=self.settings.retention_days)

    def stats_chart(self, stats) -> bytes:  # noqa: ANN001 - backend.services.stats.Stats
        """The stats chart as PNG bytes (matplotlib is imported here, never at cold start)."""
        from backend.services.stats import render_chart

        return render_chart(stats).png
