"""Start on submit: a registration asks for one launcher run now, coalesced.

Without this, a job waits for the launcher's schedule (``rate(1 minute)``): 30 s on average,
60 s at worst. With it, registering jobs *kicks* the launcher: an asynchronous invocation that
claims and creates them within a second or two. The schedule stays as the safety net.

Coalescing: at most one kicked run is *in flight* (asked for, not yet started) at a time.
The kick record (``kick#launcher``) holds ``Until``; a submitter invokes the launcher only if
its conditional write creates the record (or replaces one whose ``Until`` has passed). Every
other submitter in the meantime writes nothing more and invokes nothing: the pending run will
see its job, because the launcher *consumes* the kick (deletes the record) before it reads the
queue, and each submitter registered its job before it tried to kick. So a 2,000-job sweep
is one kick, and 50 people submitting at 9 am cause at most one extra launcher run in flight,
plus the one running. The launcher's single-claim guarantees (conditional claims, one name per
attempt, ReservedConcurrentExecutions 1) are untouched: a kick only makes a tick happen sooner.

``Until`` is the kick's expiry: after ``KICK_TTL`` (the launcher's MaximumEventAgeInSeconds)
Lambda has either run the invocation or dropped it, so a kick lost on the way (an invoke that
failed after the write, a dropped event) blocks kicks for at most that long, and the schedule
covers the gap.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from backend.domain.records import RecordKind
from backend.domain.times import format_utc, parse_utc
from backend.errors import BackendUnavailable, StoreUnavailable
from backend.ports import LaunchTrigger, RecordStore

logger = Logger(service="trainbot", child=True)

KICK_KEY = "launcher"
# The launcher's EventInvokeConfig MaximumEventAgeInSeconds: after this a kick has been run or dropped.
KICK_TTL = timedelta(seconds=120)
KICK_EVENT = {"trainbot": "kick"}


def is_kick(event: object) -> bool:
    """Whether a launcher event is a kick (start on submit) rather than its schedule."""
    return isinstance(event, dict) and event.get("trainbot") == "kick"


def kicked_for(event: dict[str, object]) -> str | None:
    """The job whose registration asked for this kicked run (None: not said)."""
    job_id = event.get("jobId")
    return job_id if isinstance(job_id, str) and job_id else None


class Kicker:
    """Asks for one launcher run after jobs are queued, at most one in flight at a time."""

    def __init__(self, store: RecordStore, trigger: LaunchTrigger | None, *, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._trigger = trigger
        self._clock = clock

    def kick(self, job_id: str | None = None) -> bool:
        """Ask for a launcher run unless one is already in flight; whether this call asked.
        ``job_id``: the job just registered (the run looks at it if its queue read is empty).
        Never raises: the job is registered already and the schedule will launch it."""
        if self._trigger is None:
            return False
        try:
            if not self._take():
                return False
        except StoreUnavailable:
            return False
        try:
            self._trigger.start_launcher(job_id)
        except BackendUnavailable as exc:
            logger.warning("could not start the launcher; its schedule will", extra={"error": str(exc)})
            self.consume()  # nothing in flight: let the next submission try again
            return False
        return True

    def consume(self) -> None:
        """Called by a kicked launcher before it reads the queue: the kick is no longer in
        flight, so the next registration asks for another run (which will see its job)."""
        try:
            self._store.delete_record(RecordKind.KICK, KICK_KEY)
        except StoreUnavailable:
            logger.warning("could not consume the kick; it expires by itself")

    def _take(self) -> bool:
        """Read first, write only to take the kick: while a kicked run is in flight (a burst)
        a registration costs one read, not a refused conditional write (DynamoDB charges a
        write it refuses; a consistent read of the small record costs a fifth as much)."""
        now = self._clock()
        until = format_utc(now + KICK_TTL)
        current = self._store.get_record(RecordKind.KICK, KICK_KEY)
        if current is None:
            # Refused only if another registration took it since our read, which came after our
            # job was written: that kick's run reads the queue later still and sees our job.
            return self._store.put_record(RecordKind.KICK, KICK_KEY, {"Until": until}, only_if_absent=True)
        if parse_utc(str(current["Until"])) > now:
            return False  # a kicked run is in flight and will see this job
        # The recorded kick expired (lost or dropped): replace exactly that one.
        return self._store.put_record(RecordKind.KICK, KICK_KEY, {"Until": until}, only_if={"Until": current["Until"]})
