"""Job history that answers questions: ``/train stats``, ``trainbot stats`` and the stats chart.

Two halves:

- :func:`compute_stats` is pure: jobs in, a :class:`Stats` out (known answers are unit-tested
  on generated histories). What each number means:

  * the window selects jobs by *creation* time, ``since <= created_at <= until``;
  * ``by_status``: jobs by status; for finished jobs (Completed, Failed, Stopped) that is the
    final status, for the rest the status they are in now;
  * ``success_rate`` = Completed / finished (None when nothing finished);
  * retries: every attempt that was followed by another one (or, for a job in Retrying now,
    its last ended attempt) is one retry, caused by that attempt's failure class (capacity,
    quota, throttling, algorithm, plan_ended, unknown, user, stopped); a retry a user asked for after the
    job had failed or stopped is counted as ``manual``. A retry is dated by when the attempt
    it repeats ended;
  * queue wait (per job): created → the launch of its first attempt SageMaker accepted
    (``launched_at``; a capacity-refused attempt keeps the job waiting). Jobs never launched
    have none. Run time (per attempt): ``started_at`` → ``ended_at``;
  * median and p90 interpolate linearly between the closest ranks (numpy's default);
  * billable instance-hours per instance type = Σ BillableTimeInSeconds × InstanceCount / 3600
    (AWS documents BillableTimeInSeconds as wall-clock time, to be multiplied by the count);
  * plan-hours, per training plan: *used* = those billable instance-hours of the attempts that
    ran on the plan (``Attempt.plan``: created on its ARN); *bought* = the plan's instances × the
    hours of its window inside the stats window (from the plans the launcher last read, the
    ``plans#board`` record; None for a plan it does not know). Plans shown: those the window's
    jobs used and those whose window overlaps it;
  * slowest-to-start instance types: by median queue wait, longest first.

- :func:`collect` reads only the window: one ``ByDay`` query per day it spans (the first and
  last with a ``CreatedAt`` bound), never a Scan, so its cost grows with the window and not
  with the table. Owner and preset filters are applied to what those queries return.

:func:`chart_series` is what the stats chart plots; the drawing (matplotlib) lives in
:mod:`backend.services.chart`, which this module never imports: the bot reads stats here and
only asks the chart function for the chart (tests/unit/test_import_boundaries.py).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from backend.domain.cost import PriceTable, Spend, SpendLine, hours_text, money_text, spend
from backend.domain.model import Job, Owner
from backend.domain.plans import TrainingPlan, reserved_hours
from backend.domain.status import TERMINAL, JobStatus
from backend.domain.tally import instance_hours, queue_wait, retries, run_time
from backend.domain.times import format_utc, to_utc
from backend.ports import JobHistory

if TYPE_CHECKING:
    from backend.ports import JobStore

S = JobStatus
DEFAULT_DAYS = 14
MAX_DAYS = 366
# The causes every summary shows, even at zero (docs/architecture.md's failure classes that retry).
MAIN_CAUSES = ("capacity", "quota", "algorithm", "throttling")
CAUSE_ORDER = (*MAIN_CAUSES, "plan_ended", "unknown", "user", "stopped", "manual")
FINISHED_ORDER = (S.COMPLETED, S.FAILED, S.STOPPED)
STATUS_ORDER = (*FINISHED_ORDER, S.NEW, S.RETRYING, S.LAUNCHED, S.IN_PROGRESS, S.STOPPING)
UNFINISHED = "Unfinished"  # the chart's series for jobs not finished yet
SLOWEST_TYPES = 5


# --- the window -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Jobs created in ``[since, until]`` (UTC)."""

    since: datetime
    until: datetime

    @classmethod
    def last_days(cls, days: int, now: datetime) -> Window:
        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"days must be between 1 and {MAX_DAYS}, not {days}")
        now = to_utc(now)
        return cls(now - timedelta(days=days), now)

    def __post_init__(self) -> None:
        if to_utc(self.since) > to_utc(self.until):
            raise ValueError("a window's start must not be after its end")

    def contains(self, moment: datetime) -> bool:
        return to_utc(self.since) <= to_utc(moment) <= to_utc(self.until)

    @property
    def days(self) -> list[date]:
        """Every UTC day the window touches, oldest first (the ByDay partitions to read)."""
        first, last = to_utc(self.since).date(), to_utc(self.until).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def describe(self) -> str:
        return f"{to_utc(self.since):%Y-%m-%d %H:%M} – {to_utc(self.until):%Y-%m-%d %H:%M} UTC"


# --- what one job contributes ----------------------------------------------------------------


# --- statistics -----------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), linear between the closest ranks; None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Distribution:
    count: int
    median: float | None
    p90: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Distribution:
        data = list(values)
        return cls(len(data), percentile(data, 50), percentile(data, 90))


@dataclass(frozen=True)
class SlowType:
    instance_type: str
    median_wait: float
    jobs: int


@dataclass(frozen=True)
class PlanHours:
    """One training plan over the window: instance-hours the chosen jobs ``used`` on it, and the
    instance-hours ``bought`` (its reservation inside the window; None: the plan is unknown)."""

    plan: str
    used: float
    bought: float | None

    @property
    def share(self) -> float | None:
        """``used`` as a share of ``bought`` (None when nothing was bought, or it is unknown)."""
        return self.used / self.bought if self.bought else None


@dataclass(frozen=True)
class Stats:
    """What ``/train stats`` answers, for one window and scope."""

    window: Window
    scope: str
    total: int
    by_status: dict[str, int]
    finished: int
    completed: int
    success_rate: float | None
    retries_by_cause: dict[str, int]
    queue_wait: Distribution
    run_time: Distribution
    instance_hours: dict[str, float]
    slowest_to_start: list[SlowType]
    jobs_per_day: dict[str, dict[str, int]]  # day -> Completed/Failed/Stopped/Unfinished -> count
    retries_per_day: dict[str, dict[str, int]]  # day -> cause -> count
    computed_at: datetime | None = None
    retention_days: int = 0
    # Billed spend by user, team and instance type, priced (backend.domain.cost.spend).
    spend: Spend | None = None
    # Training plans: instance-hours used against bought, by plan (most used first).
    plan_hours: list[PlanHours] = field(default_factory=list)
    # Read from the rollup's tallies (backend.services.rollup): jobs created and not finished
    # yet whose status the tallies do not keep (None: none such, or not known for this scope),
    # and, when the newest ends were too many to read one by one, when their counting stops.
    unfinished: int | None = None
    counted_until: datetime | None = None
    from_tallies: bool = False
    unfinished_unknown: str = ""  # from the tallies: why jobs not finished yet are not counted here

    @property
    def total_retries(self) -> int:
        return sum(self.retries_by_cause.values())

    @property
    def expired_before(self) -> datetime | None:
        """With retention on: finished jobs that ended before this may have expired."""
        if not self.retention_days:
            return None
        return to_utc(self.window.until) - timedelta(days=self.retention_days)

    def coverage(self) -> str:
        """What the numbers cover, in words: the window, and what retention may have removed."""
        text = f"Jobs created {self.window.describe()}"
        if self.from_tallies:
            text += "; waits and run times of finished jobs, to within 5%"
            if self.unfinished is None and self.unfinished_unknown:
                text += f"; {self.unfinished_unknown}"
        if self.counted_until is not None:
            text += f"; jobs that finished after {to_utc(self.counted_until):%H:%M} UTC are still being counted"
        cutoff = self.expired_before
        if cutoff is not None:
            text += f"; finished jobs are kept {self.retention_days} days"
            if to_utc(self.window.since) < cutoff:
                text += f", so jobs that ended before {cutoff:%Y-%m-%d} have expired and are not counted"
        return text


def compute_stats(
    jobs: Iterable[Job],
    window: Window,
    now: datetime,
    *,
    scope: str = "everyone",
    retention_days: int = 0,
    prices: PriceTable | None = None,
    team_of: Callable[[str], str] | None = None,
    plans: Mapping[str, TrainingPlan] | None = None,
) -> Stats:
    """Statistics of the jobs created in ``window`` (others are ignored). Pure. Spend is priced
    with ``prices`` (default: the repo's table) and grouped by ``team_of`` (default: no teams,
    each user their own); plan-hours bought come from ``plans`` (by name)."""
    now = to_utc(now)
    chosen = [j for j in jobs if window.contains(j.created_at)]
    day_keys = [d.isoformat() for d in window.days]
    per_day = {d: {s.value: 0 for s in FINISHED_ORDER} | {UNFINISHED: 0} for d in day_keys}
    retry_days: dict[str, dict[str, int]] = {d: {} for d in day_keys}
    statuses: Counter[str] = Counter()
    causes: Counter[str] = Counter({c: 0 for c in MAIN_CAUSES})
    waits: list[float] = []
    waits_by_type: dict[str, list[float]] = defaultdict(list)
    runs: list[float] = []
    hours_by_type: dict[str, float] = {}
    hours_by_plan: dict[str, float] = {}

    for job in chosen:
        statuses[job.status.value] += 1
        day = format_utc(job.created_at)[:10]
        series = job.status.value if job.status in TERMINAL else UNFINISHED
        per_day.setdefault(day, {})
        per_day[day][series] = per_day[day].get(series, 0) + 1
        wait = queue_wait(job)
        if wait is not None:
            waits.append(wait)
            # The type the job started on (a fallback type, maybe).
            waits_by_type[job.instance_type_of(job.attempts[0] if job.attempts else None)].append(wait)
        for attempt in job.attempts:
            ran = run_time(attempt)
            if ran is not None:
                runs.append(ran)
            if attempt.billable_seconds:
                kind = job.instance_type_of(attempt)
                hours_by_type[kind] = hours_by_type.get(kind, 0.0) + instance_hours(job, attempt)
                if attempt.plan:
                    hours_by_plan[attempt.plan] = hours_by_plan.get(attempt.plan, 0.0) + instance_hours(job, attempt)
        for cause, when in retries(job):
            causes[cause] += 1
            when_day = format_utc(min(max(to_utc(when), to_utc(window.since)), to_utc(window.until)))[:10]
            bucket = retry_days.setdefault(when_day, {})
            bucket[cause] = bucket.get(cause, 0) + 1

    finished = sum(statuses[s.value] for s in FINISHED_ORDER)
    completed = statuses[S.COMPLETED.value]
    slow = sorted(
        (SlowType(t, percentile(w, 50) or 0.0, len(w)) for t, w in waits_by_type.items()),
        key=lambda s: (-s.median_wait, s.instance_type),
    )[:SLOWEST_TYPES]
    return Stats(
        window=window,
        scope=scope,
        total=len(chosen),
        by_status={s.value: statuses[s.value] for s in STATUS_ORDER if statuses[s.value] or s in FINISHED_ORDER},
        finished=finished,
        completed=completed,
        success_rate=completed / finished if finished else None,
        retries_by_cause={c: causes[c] for c in CAUSE_ORDER if c in causes},
        queue_wait=Distribution.of(waits),
        run_time=Distribution.of(runs),
        instance_hours={t: h for t, h in sorted(hours_by_type.items(), key=lambda kv: (-kv[1], kv[0]))},
        slowest_to_start=slow,
        jobs_per_day=per_day,
        retries_per_day=retry_days,
        computed_at=now,
        retention_days=retention_days,
        spend=spend(
            chosen,
            prices,
            team_of=team_of or (lambda user: user),
            day_of=lambda at: format_utc(min(max(to_utc(at), to_utc(window.since)), to_utc(window.until)))[:10],
        ),
        plan_hours=_plan_hours(hours_by_plan, plans or {}, window),
    )


def _plan_hours(used: Mapping[str, float], plans: Mapping[str, TrainingPlan], window: Window) -> list[PlanHours]:
    """Each plan the window's jobs used or whose window overlaps it: used against bought."""
    since, until = to_utc(window.since), to_utc(window.until)
    bought = {name: reserved_hours(plan, since, until) for name, plan in plans.items()}
    names = {name for name, hours in used.items() if hours} | {name for name, hours in bought.items() if hours}
    rows = [PlanHours(name, used.get(name, 0.0), bought.get(name)) for name in names]
    return sorted(rows, key=lambda row: (-row.used, -(row.bought or 0.0), row.plan))


# --- reading the window ---------------------------------------------------------------------


def jobs_in_window(store: JobHistory, window: Window) -> Iterator[Job]:
    """Jobs created in ``window``, oldest day first: one ByDay query per day (paged), the
    first and last bounded by ``CreatedAt``, so only the window is read."""
    since, until = format_utc(window.since), format_utc(window.until)
    days = window.days
    for index, day in enumerate(days):
        yield from store.jobs_created_on(
            day.isoformat(),
            since=since if index == 0 else None,
            until=until if index == len(days) - 1 else None,
        )


def matches(job: Job, owner: Owner | str | None, preset: str | None) -> bool:
    """``owner``: an Owner (team and user) or a bare Slack user id."""
    if isinstance(owner, Owner) and job.owner != owner:
        return False
    if isinstance(owner, str) and job.owner.user_id != owner:
        return False
    return preset is None or job.preset == preset


def scope_label(owner: Owner | str | None, preset: str | None) -> str:
    who = "everyone" if owner is None else (owner.user_id if isinstance(owner, Owner) else owner)
    return who + (f", preset {preset}" if preset else "")


def collect(
    store: JobHistory | JobStore,
    owner: Owner | str | None,
    days: int,
    preset: str | None,
    now: datetime,
    *,
    retention_days: int = 0,
    prices: PriceTable | None = None,
    team_of: Callable[[str], str] | None = None,
    plans: Mapping[str, TrainingPlan] | None = None,
) -> Stats:
    """Statistics of the last ``days`` days (jobs of ``owner`` / ``preset`` when given),
    reading only that window (``plans``: the training plans, for plan-hours bought). Once the
    monitor's rollup runs, from its daily tallies (:func:`collect_rolled`)."""
    # One owner's jobs of one preset have no tally of their own: those are read job by job.
    cursor = _rollup_cursor(store) if preset is None or owner is None else None
    if cursor is not None:
        return collect_rolled(
            store, cursor, owner, days, now, preset=preset,  # type: ignore[arg-type]  # a store with records: it has a cursor
            retention_days=retention_days, prices=prices, team_of=team_of, plans=plans,
        )
    window = Window.last_days(days, now)
    jobs = (j for j in jobs_in_window(store, window) if matches(j, owner, preset))
    return compute_stats(
        jobs, window, now, scope=scope_label(owner, preset), retention_days=retention_days, prices=prices, team_of=team_of, plans=plans
    )


# Unrolled slices' finished jobs read one by one at most (beyond: counted when rolled).
TAIL_MAX = 2000


def _rollup_cursor(store: Any) -> dict[str, Any] | None:
    """The rollup's cursor, when the store keeps records and the rollup has run."""
    from backend.domain.records import RecordKind

    get_record = getattr(store, "get_record", None)
    return get_record(RecordKind.STATS, "cursor") if get_record is not None else None


def collect_rolled(
    store: JobStore,
    cursor: Mapping[str, Any],
    owner: Owner | str | None,
    days: int,
    now: datetime,
    *,
    preset: str | None = None,
    retention_days: int = 0,
    prices: PriceTable | None = None,
    team_of: Callable[[str], str] | None = None,
    plans: Mapping[str, TrainingPlan] | None = None,
) -> Stats:
    """Statistics of the jobs created since midnight (UTC) ``days`` days ago (everyone's, one
    owner's, or everyone's of one ``preset``: not both), from the rollup's
    daily tallies, the finished jobs not rolled up yet (``TAIL_MAX`` at most), and, for the
    days before the rollup began, the jobs themselves. Times and hours are of finished jobs."""
    from backend.domain import tally as tallies
    from backend.services import rollup

    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, not {days}")
    now = to_utc(now)
    window = Window(datetime.combine((now - timedelta(days=days)).date(), time(), tzinfo=UTC), now)
    if owner is not None and preset is not None:
        raise ValueError("the rollup keeps no tally of one owner's jobs of one preset")
    if preset is not None:
        scope = rollup.preset_scope(preset)
    else:
        scope = rollup.ALL if owner is None else rollup.user_scope(owner.user_id if isinstance(owner, Owner) else owner)
    since_hour = str(cursor["Since"])
    since_at = datetime.fromisoformat(since_hour + ":00:00+00:00")
    day_keys = [d.isoformat() for d in window.days]
    stored = rollup.day_tallies(store, scope, [d for d in day_keys if d >= since_hour[:10]])
    per_day = {day: tally for day, (tally, _) in stored.items()}
    through = {day: parts for day, (_, parts) in stored.items()}
    unfinished_live: dict[str, Counter[str]] = defaultdict(Counter)

    # Days (and hours) before the rollup began: the jobs themselves.
    if to_utc(window.since) < since_at:
        early = Window(window.since, min(now, since_at - timedelta(microseconds=1)))
        for job in jobs_in_window(store, early):
            if not matches(job, owner, preset):
                continue
            day = format_utc(job.created_at)[:10]
            if job.status in TERMINAL:
                for _part, tally in rollup.split(scope, tallies.contribution(job)):  # what the rollup keeps of it
                    tallies.add(per_day.setdefault(day, {}), tally)
            else:
                unfinished_live[day][job.status.value] += 1

    # Finished jobs the rollup has not reached yet, one by one (the newest few minutes).
    roller = rollup.StatsRoller(store, lambda: now)
    counted_until: datetime | None = None
    read = 0
    for name in rollup.pending_slices(cursor, now):
        ended = roller.ended_in(name)
        if read + len(ended) > TAIL_MAX:
            counted_until = rollup.slice_start(name)
            break
        read += len(ended)
        for job in ended:
            created_at = format_utc(job.created_at)
            day = created_at[:10]
            if created_at[:13] >= since_hour and window.contains(job.created_at) and matches(job, owner, preset):
                # A roll that stopped half-way added this slice to some days' records already.
                for part, tally in rollup.split(scope, roller.delta(job, name)):
                    if through.get(day, {}).get(part, "") < name:
                        tallies.add(per_day.setdefault(day, {}), tally)

    # Jobs created (everyone's only: per user they are not counted), for the unfinished ones.
    created: dict[str, int] | None = None
    if isinstance(owner, Owner):
        # One owner's: a COUNT on the Owner index per day (keys only; DynamoDB answers the count).
        created = {}
        for date_ in window.days:
            start = max(since_at, datetime.combine(date_, time(), tzinfo=UTC))
            end = min(now, datetime.combine(date_, time.max, tzinfo=UTC))
            if start <= end:
                created[date_.isoformat()] = store.count_owned(owner, format_utc(start), format_utc(end))
    elif owner is None and preset is None:
        created = {}
        counted_to = datetime.fromisoformat(str(cursor["Created"]) + ":00:00+00:00")
        for day in per_day:
            if day >= since_hour[:10]:
                # Only the hours the cursor has passed: a roll killed after counting an hour but
                # before moving the cursor left a count the read below counts again.
                hours = rollup.counted_hours(store, day)
                created[day] = sum(n for hour, n in hours.items() if f"{day}T{hour}" < str(cursor["Created"]))
        if counted_to <= now:
            start = max(counted_to, to_utc(window.since))
            for date_ in Window(start, now).days:
                first = max(start, datetime.combine(date_, time(), tzinfo=UTC))
                created[date_.isoformat()] = created.get(date_.isoformat(), 0) + store.count_created(
                    format_utc(first), format_utc(min(now, datetime.combine(date_, time.max, tzinfo=UTC)))
                )
    if created is not None:
        unknown_why = ""
    elif preset is not None:
        unknown_why = "jobs not finished yet are not counted per preset"
    else:
        unknown_why = "jobs not finished yet are counted for everyone and for your own jobs, not another user's"
    return stats_of_tallies(
        per_day, window, now, scope=scope_label(owner, preset), created=created, unfinished_live=unfinished_live,
        counted_until=counted_until, unknown_why=unknown_why, retention_days=retention_days, prices=prices, team_of=team_of, plans=plans,
    )


def stats_of_tallies(
    per_day: Mapping[str, Mapping[str, float]],
    window: Window,
    now: datetime,
    *,
    scope: str,
    created: Mapping[str, int] | None,
    unfinished_live: Mapping[str, Mapping[str, int]],
    counted_until: datetime | None = None,
    unknown_why: str = "",
    retention_days: int = 0,
    prices: PriceTable | None = None,
    team_of: Callable[[str], str] | None = None,
    plans: Mapping[str, TrainingPlan] | None = None,
) -> Stats:
    """A :class:`Stats` from daily tallies (``backend.domain.tally``; day -> tally) and the
    unfinished jobs counted one by one (day -> status -> count). Pure."""
    from backend.domain import tally as tallies
    from backend.domain.cost import spend_of_hours

    day_keys = [d.isoformat() for d in window.days]
    first, last = day_keys[0], day_keys[-1]

    def clamp(day: str) -> str:
        return min(max(day, first), last)

    combined = tallies.total(per_day.values())
    finished_by = {s.value: int(round(combined.get(f"s|{s.value}", 0))) for s in FINISHED_ORDER}
    jobs_per_day: dict[str, dict[str, int]] = {}
    unfinished_known = 0
    for day in day_keys:
        tally = per_day.get(day, {})
        row = {s.value: int(round(tally.get(f"s|{s.value}", 0))) for s in FINISHED_ORDER}
        live = sum(unfinished_live.get(day, {}).values())
        rolled = max(0, created.get(day, 0) - sum(row.values()) - live) if created is not None else 0
        unfinished_known += rolled
        row[UNFINISHED] = live + rolled
        jobs_per_day[day] = row
    statuses: Counter[str] = Counter(finished_by)
    for counts in unfinished_live.values():
        statuses.update(counts)
    retries_per_day: dict[str, dict[str, int]] = {d: {} for d in day_keys}
    causes: Counter[str] = Counter({c: 0 for c in MAIN_CAUSES})
    hours_by_type: dict[str, float] = {}
    plan_used: dict[str, float] = {}
    billed: list[tuple[str | None, str, str | None, float]] = []
    unowned: list[tuple[str | None, str, str | None, float]] = []  # the same hours by type alone
    hours_per_day: dict[str, dict[str, float]] = {}
    for key, value in combined.items():
        kind, _, rest = key.partition("|")
        if kind == "x":
            cause, _, day = rest.partition("|")
            causes[cause] += int(round(value))
            bucket = retries_per_day.setdefault(clamp(day), {})
            bucket[cause] = bucket.get(cause, 0) + int(round(value))
        elif kind == "h":  # by owner, type and day: a job's own contribution (days read job by job)
            user, kind_, day = rest.split("|")
            hours_by_type[kind_] = hours_by_type.get(kind_, 0.0) + value
            billed.append((user, kind_, None, value))
            if day:
                by_day = hours_per_day.setdefault(clamp(day), {})
                by_day[kind_] = by_day.get(kind_, 0.0) + value
        elif kind == "d":  # the rollup's: by type and day...
            kind_, day = rest.split("|")
            hours_by_type[kind_] = hours_by_type.get(kind_, 0.0) + value
            unowned.append((None, kind_, None, value))
            if day:
                by_day = hours_per_day.setdefault(clamp(day), {})
                by_day[kind_] = by_day.get(kind_, 0.0) + value
        elif kind == "u":  # ...and by owner and type (backend.services.rollup.split)
            user, kind_ = rest.split("|")
            billed.append((user, kind_, None, value))
        elif kind == "p":
            plan_used[rest] = plan_used.get(rest, 0.0) + value
    if not billed:
        billed = unowned  # a preset's: no spend by owner kept (backend.services.rollup.split)
    waits, runs = tallies.histogram(combined, "w|"), tallies.histogram(combined, "r|")
    types = sorted({key.split("|")[1] for key in combined if key.startswith("t|")})
    slow = sorted(
        (
            SlowType(kind, tallies.percentile(hist, 50) or 0.0, sum(hist.values()))
            for kind in types
            if (hist := tallies.histogram(combined, f"t|{kind}|"))
        ),
        key=lambda s: (-s.median_wait, s.instance_type),
    )[:SLOWEST_TYPES]
    finished = sum(finished_by.values())
    completed = finished_by[S.COMPLETED.value]
    unfinished = None if created is None else unfinished_known
    return Stats(
        window=window,
        scope=scope,
        total=finished + sum(statuses[s.value] for s in STATUS_ORDER if s not in FINISHED_ORDER) + (unfinished or 0),
        by_status={s.value: statuses[s.value] for s in STATUS_ORDER if statuses[s.value] or s in FINISHED_ORDER},
        finished=finished,
        completed=completed,
        success_rate=completed / finished if finished else None,
        retries_by_cause={c: causes[c] for c in CAUSE_ORDER if c in causes},
        queue_wait=_distribution(waits),
        run_time=_distribution(runs),
        instance_hours={t: h for t, h in sorted(hours_by_type.items(), key=lambda kv: (-kv[1], kv[0]))},
        slowest_to_start=slow,
        jobs_per_day=jobs_per_day,
        retries_per_day=retries_per_day,
        computed_at=to_utc(now),
        retention_days=retention_days,
        spend=spend_of_hours(billed, prices, team_of=team_of or (lambda user: user), per_day=hours_per_day),
        plan_hours=_plan_hours(plan_used, plans or {}, window),
        unfinished=unfinished or None,
        counted_until=counted_until,
        from_tallies=True,
        unfinished_unknown=unknown_why,
    )


def _distribution(hist: Mapping[int, int]) -> Distribution:
    from backend.domain import tally as tallies

    return Distribution(sum(hist.values()), tallies.percentile(hist, 50), tallies.percentile(hist, 90))


@dataclass(frozen=True)
class StatsReader:
    """``collect`` as the deployment configures it (retention, prices, teams): what the bot's
    summary and the chart function read, so both show the same numbers."""

    store: JobHistory
    clock: Callable[[], datetime]
    retention_days: int = 0
    prices: Callable[[], PriceTable | None] = lambda: None
    team_of: Callable[[str], str] | None = None
    # The training plans as the launcher last read them (plan-hours bought); none before it has.
    plans: Callable[[], Mapping[str, TrainingPlan]] = dict

    def read(self, scope: str, requester: Owner, user_id: str | None, days: int, preset: str | None) -> Stats:
        """``scope``: ``mine`` (the requester's jobs), ``user`` (``user_id``'s) or ``all``."""
        owner = requester if scope == "mine" else (user_id if scope == "user" else None)
        return collect(
            self.store, owner, days, preset, self.clock(),
            retention_days=self.retention_days, prices=self.prices(), team_of=self.team_of, plans=self.plans(),
        )


# --- the chart ------------------------------------------------------------------------------


def chart_series(stats: Stats) -> dict[str, Any]:
    """What the chart plots: jobs per day by final status, and retries per day by cause."""
    days = sorted(stats.jobs_per_day)
    job_series = [s.value for s in FINISHED_ORDER] + [UNFINISHED]
    causes = [c for c in CAUSE_ORDER if c in MAIN_CAUSES or any(stats.retries_per_day.get(d, {}).get(c) for d in days)]
    series: dict[str, Any] = {
        "days": days,
        "jobs": {name: [stats.jobs_per_day[d].get(name, 0) for d in days] for name in job_series},
        "retries": {cause: [stats.retries_per_day.get(d, {}).get(cause, 0) for d in days] for cause in causes},
        "title": f"Trainbot jobs · {stats.scope} · {days[0]} to {days[-1]}" if days else "Trainbot jobs",
    }
    if stats.spend is not None and stats.spend.per_day:
        # A third panel: billed instance-hours per day (attempt end) by instance type.
        kinds = [line.name for line in stats.spend.by_type]
        series["hours"] = {k: [round(stats.spend.per_day.get(d, {}).get(k, 0.0), 3) for d in days] for k in kinds}
    if stats.plan_hours:
        # A last panel: each training plan's instance-hours used, and bought but not used.
        series["plans"] = {
            "names": [row.plan for row in stats.plan_hours],
            "used": [round(row.used, 3) for row in stats.plan_hours],
            "unused": [round(max(0.0, (row.bought or 0.0) - row.used), 3) for row in stats.plan_hours],
        }
    return series


# --- plain text (the CLI) -------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def format_text(stats: Stats) -> str:
    """A plain-text summary (the CLI's answer)."""
    rate = "–" if stats.success_rate is None else f"{stats.success_rate:.0%}"
    lines = [
        f"Trainbot stats for {stats.scope}",
        stats.coverage(),
        f"jobs: {stats.total}  finished: {stats.finished}  success rate: {rate}",
        "by status: " + (", ".join(f"{k} {v}" for k, v in stats.by_status.items()) or "none")
        + (f", not finished yet {stats.unfinished}" if stats.unfinished else ""),
        "retries by cause: " + ", ".join(f"{k} {v}" for k, v in stats.retries_by_cause.items()),
        f"queue wait: median {_duration(stats.queue_wait.median)}, p90 {_duration(stats.queue_wait.p90)} "
        f"({stats.queue_wait.count} jobs)",
        f"run time: median {_duration(stats.run_time.median)}, p90 {_duration(stats.run_time.p90)} "
        f"({stats.run_time.count} attempts)",
        "instance-hours: " + (", ".join(f"{t} {h:.2f}" for t, h in stats.instance_hours.items()) or "none"),
        "slowest to start: "
        + (", ".join(f"{s.instance_type} {_duration(s.median_wait)} ({s.jobs})" for s in stats.slowest_to_start) or "–"),
    ]
    if stats.plan_hours:
        lines.append("plan-hours (used of bought): " + ", ".join(plan_hours_text(row) for row in stats.plan_hours))
    if stats.spend is not None and stats.spend.instance_hours:
        lines.append(f"spend: {stats.spend.text()}")
        for label, group in (("by user", stats.spend.by_user), ("by team", stats.spend.by_team), ("by type", stats.spend.by_type)):
            if not group:
                continue  # a preset's stats keep no spend by owner
            lines.append(f"  {label}: " + ", ".join(spend_line(line, stats.spend.currency) for line in group[:10]))
    return "\n".join(lines)


def plan_hours_text(row: PlanHours) -> str:
    """``p5-dec 12.50 of 96.00 (13%)``; a plan Trainbot does not know: ``of ?``."""
    if row.bought is None:
        return f"{row.plan} {row.used:.2f} of ?"
    share = f" ({row.share:.0%})" if row.share is not None else ""
    return f"{row.plan} {row.used:.2f} of {row.bought:.2f}{share}"


def spend_line(line: SpendLine, currency: str) -> str:
    return f"{line.name} {hours_text(line.instance_hours)} h" + (f" {money_text(line.money, currency)}" if line.money is not None else "")
