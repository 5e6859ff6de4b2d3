"""The stats rollup: per-day tallies of finished jobs, so ``/train stats`` reads a few small
records instead of every job of its window (issue 23: 14 days of 100,000 jobs a day).

The monitor runs :meth:`StatsRoller.roll` after its sweep. It walks the ``Ended`` index (finished
jobs by the ten-minute slice they finished in), ``ROLL_SLICES`` slices at a time once they are
``GRACE`` old (no write that ends a job can land later than that: every function's timeout is
shorter), and adds each job's contribution (:func:`backend.domain.tally.contribution`) to the
tally of the day the job was *created* (``stats#all#<day>``), to its owner's
(``stats#u:<user>#<day>``) and to its preset's (``stats#p:<preset>#<day>``), so the stats keep their meaning: the jobs created in the window.
It also counts, per hour once the hour is over, the jobs created (``stats#created#<day>``),
so the jobs not finished yet are the created ones less the finished ones.

Exactly once, whatever crashes or runs twice:

- a slice's finished jobs are first written down (``stats#ends#<slice>``, in chunks of
  ``CHUNK`` ids; the record without a chunk number is written last and is the commit): a roll
  repeated after a crash reads the same jobs by id, never the index again (a job retried since
  has left it);
- each tally records the last slice added to it (``Through``) and is written only if that did
  not change since it was read: a repeat adds nothing to a tally that already has the slice;
- a job its owner retried after it had finished and that finished again counts once: its
  contribution now, less its contribution at its earlier end if that end was counted (its id
  is in that slice's record). Both land in the same day's tally (the creation day), so the
  tally moves from the old outcome to the new one.

A job retried and not finished yet keeps its last counted outcome until it finishes again.
Jobs created before the roller's first run (``Since``) are not tallied: the stats read those
days job by job, as before.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from backend.domain import tally as tallies
from backend.domain.records import RecordKind
from backend.domain.status import TERMINAL
from backend.domain.times import format_utc, parse_utc, to_utc

if TYPE_CHECKING:
    from backend.domain.model import Job
    from backend.ports import JobStore

KIND = RecordKind.STATS
# How long after a slice (or hour) is over before it is rolled up: longer than any Trainbot
# function runs (template.yaml: 290 s at most), so every write that ended a job in it has landed.
GRACE = timedelta(minutes=10)
SLICE = timedelta(minutes=10)
CHUNK = 4000  # job ids per record of a slice's list (about 100 KB; an item holds 400 KB)
MAX_SLICES = 36  # slices rolled in one run at most (6 hours: a monitor down for a while catches up)
# Slices rolled together, each tally written once for them: a run rolls when this many are due
# (every hour), so a busy day's tallies are rewritten 24 times a day, not 144. The read counts
# the newer ends one by one (TAIL_MAX in backend.services.stats): up to 75 minutes of them, all
# of them below ~38,000 jobs a day. At 100,000 jobs a day rolling every half hour cost twice the
# writes (bench/scale.py), and the answer still said from when ends were being counted.
ROLL_SLICES = 6
ALL = "all"
# Records that keep everyone's billed hours by owner, per day: each holds the owners whose user
# id hashes to it, about 45 bytes an owner and type (bench/scale.py --rollup-writes: 55 KB a
# shard at 2,000 owners, most on 4-6 types; raise this past ~2,300 such owners a day).
SPEND_SHARDS = 8


def user_scope(user_id: str) -> str:
    return f"u:{user_id}"


def preset_scope(preset: str) -> str:
    return f"p:{preset}"


def scopes_of(job: Job) -> tuple[str, ...]:
    """The tallies a job counts in: everyone's, its owner's, and its preset's (if any)."""
    return (ALL, user_scope(job.owner.user_id), *((preset_scope(job.preset),) if job.preset else ()))


def parts_of(scope: str) -> tuple[str, ...]:
    """The records one day of ``scope`` is kept in (their key is ``<scope><part>#<day>``): one
    for an owner's and a preset's; for everyone's, one more per spend shard (see :func:`split`)."""
    return ("", *(f"${n}" for n in range(SPEND_SHARDS))) if scope == ALL else ("",)


def split(scope: str, delta: Mapping[str, float]) -> Iterator[tuple[str, tallies.Tally]]:
    """``delta`` (a contribution, :func:`backend.domain.tally.contribution`) as ``scope``'s
    parts keep it: its billed hours by owner, type and day become hours by type and day
    (``d|``) and by owner and type (``u|``). An owner's keeps both; everyone's keeps the ``u|``
    entries in the owner's spend shard, so no record grows with the number of owners (at 2,000
    owners one tally of everyone's held 517 KB, past DynamoDB's 400 KB item limit); a preset's
    keeps none (spend by owner and team is not kept per preset: its shards were a third of the
    rollup's writes at 100,000 jobs a day from 400 owners; bench/scale.py)."""
    main: tallies.Tally = {}
    shards: dict[str, tallies.Tally] = {}
    for key, value in delta.items():
        if not key.startswith("h|"):
            main[key] = main.get(key, 0) + value
            continue
        _, user, kind, day = key.split("|")
        by_day = f"d|{kind}|{day}"
        main[by_day] = main.get(by_day, 0) + value
        if scope == ALL:
            part = shards.setdefault(spend_shard(user), {})
        elif scope.startswith("u:"):
            part = main
        else:
            continue
        by_user = f"u|{user}|{kind}"
        part[by_user] = part.get(by_user, 0) + value
    yield "", main
    yield from shards.items()


def spend_shard(user_id: str) -> str:
    """The spend shard (a part of everyone's and each preset's tallies) of ``user_id``."""
    return f"${zlib.crc32(user_id.encode()) % SPEND_SHARDS}"


def slice_start(name: str) -> datetime:
    return parse_utc(name + "0:00Z")


def slice_of(moment: datetime) -> str:
    return tallies.end_slice(format_utc(moment))


def next_slice(name: str) -> str:
    return slice_of(slice_start(name) + SLICE)


@dataclass
class Batch:
    slices: list[str] = field(default_factory=list)
    jobs: int = 0
    written: int = 0


@dataclass
class RollReport:
    slices: int = 0
    jobs: int = 0
    tallies_written: int = 0
    hours_counted: int = 0
    caught_up: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"slices": self.slices, "jobs": self.jobs, "tallies_written": self.tallies_written, "hours_counted": self.hours_counted}


@dataclass
class StatsRoller:
    store: JobStore
    clock: Callable[[], datetime]
    _counted: dict[str, frozenset[str]] = field(default_factory=dict)
    # Nothing is due before this (the cursor only moves forward): a warm run skips the read.
    _next_due: datetime | None = None

    # --- the cursor ---------------------------------------------------------------------------

    def cursor(self) -> dict[str, Any]:
        """``Since`` (first day tallied), ``Ends`` (next slice to roll), ``Created`` (next hour to
        count); written on the first run."""
        found = self.store.get_record(KIND, "cursor")
        if found is not None:
            return found
        hour = format_utc(self.clock())[:13]
        start = {"Since": hour, "Ends": hour + ":0", "Created": hour}
        if not self.store.put_record(KIND, "cursor", start, only_if_absent=True):
            return self.store.get_record(KIND, "cursor") or start
        return start

    def _advance(self, cursor: dict[str, Any], **moves: str) -> bool:
        """Move the cursor if no other roller moved it since it was read."""
        after = {**cursor, **moves}
        if self.store.put_record(KIND, "cursor", after, only_if={k: cursor[k] for k in moves}):
            cursor.update(moves)
            return True
        return False

    # --- one run --------------------------------------------------------------------------------

    def roll(self, should_continue: Callable[[], bool] = lambda: True) -> RollReport:
        """Roll every slice and count every hour that is ``GRACE`` old (``MAX_SLICES`` at most)."""
        report = RollReport()
        now = to_utc(self.clock())
        if self._next_due is not None and now < self._next_due:
            return report
        cursor = self.cursor()
        due: list[str] = []
        name = cursor["Ends"]
        while len(due) < MAX_SLICES and slice_start(name) + SLICE + GRACE <= now:
            due.append(name)
            name = next_slice(name)
        if len(due) >= ROLL_SLICES:
            rolled = self.roll_slices(due, since=cursor["Since"], should_continue=should_continue)
            report.slices, report.jobs, report.tallies_written = len(rolled.slices), rolled.jobs, rolled.written
            if not rolled.slices or not self._advance(cursor, Ends=next_slice(rolled.slices[-1])):
                report.caught_up = False
                return report  # out of time, or another roller is at it
        report.caught_up = slice_start(cursor["Ends"]) + ROLL_SLICES * SLICE + GRACE > now
        while parse_utc(cursor["Created"] + ":00:00Z") + timedelta(hours=1) + GRACE <= now and should_continue():
            hour = cursor["Created"]
            start = parse_utc(hour + ":00:00Z")
            created = self.store.count_created(format_utc(start), format_utc(start + timedelta(hours=1) - timedelta(microseconds=1)))
            self.store.set_record_entry(KIND, f"created#{hour[:10]}", "Hours", hour[11:13], created)
            report.hours_counted += 1
            if not self._advance(cursor, Created=format_utc(start + timedelta(hours=1))[:13]):
                break
        self._next_due = min(
            slice_start(cursor["Ends"]) + ROLL_SLICES * SLICE + GRACE, parse_utc(cursor["Created"] + ":00:00Z") + timedelta(hours=1) + GRACE
        )
        return report

    def roll_slices(self, names: list[str], *, since: str, should_continue: Callable[[], bool] = lambda: True) -> Batch:
        """Add the jobs that finished in slices ``names`` (consecutive, oldest first) to their
        creation days' tallies, each tally written once for the lot."""
        batch = Batch()
        parts: dict[str, list[tuple[str, tallies.Tally]]] = {}
        for name in names:
            if batch.slices and not should_continue():
                break
            jobs = self._slice_jobs(name)
            deltas: dict[str, tallies.Tally] = {}
            for job in jobs:
                created = format_utc(job.created_at)
                if created[:13] < since:
                    continue  # created before the rollup began: those days are read job by job
                delta = self.delta(job, name)
                if not delta:
                    continue
                day = created[:10]
                for scope in scopes_of(job):
                    for part, tally in split(scope, delta):
                        tallies.add(deltas.setdefault(f"{scope}{part}#{day}", {}), tally)
            for key, delta in deltas.items():
                parts.setdefault(key, []).append((name, delta))
            batch.slices.append(name)
            batch.jobs += len(jobs)
        for key, keyed in sorted(parts.items()):
            if self._apply(key, keyed):
                batch.written += 1
        return batch

    def _slice_jobs(self, name: str) -> list[Job]:
        """The jobs whose end in slice ``name`` is counted: written down first (see above)."""
        return self._ended(name, write_down=True)

    def ended_in(self, name: str) -> list[Job]:
        """The jobs whose end in slice ``name`` a roll counts (or will): read, never written."""
        return self._ended(name, write_down=False)

    def _ended(self, name: str, *, write_down: bool) -> list[Job]:
        """The slice's list once one is written (a job retried since has left the index), else
        the index's, written down first when ``write_down``."""
        head = self.store.get_record(KIND, f"ends#{name}")
        if head is None:
            ended = [j for j in self.store.jobs_ended_in(name) if _ends_in(j, name) is not None]
            if not write_down:
                return ended
            ids = sorted(j.job_id for j in ended)
            chunks = [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]
            for number, chunk in enumerate(chunks):
                self.store.put_record(KIND, f"ends#{name}#{number}", {"Ids": chunk})
            if self.store.put_record(KIND, f"ends#{name}", {"Chunks": len(chunks), "Jobs": len(ids)}, only_if_absent=True):
                self._counted[name] = frozenset(ids)
                return ended
            head = self.store.get_record(KIND, f"ends#{name}")  # another roller wrote its list first
        ids = sorted(self._ids(name, head))
        return [j for j in self.store.get_many(ids) if _ends_in(j, name) is not None]

    def counted_in(self, name: str) -> frozenset[str]:
        """Ids of the jobs whose end in slice ``name`` was counted (empty: not rolled)."""
        return self._ids(name, None)

    def _ids(self, name: str, head: dict[str, Any] | None) -> frozenset[str]:
        """The ids slice ``name``'s list holds (``head``: its record, when read already)."""
        if name not in self._counted:
            head = head if head is not None else self.store.get_record(KIND, f"ends#{name}")
            ids: set[str] = set()
            for number in range(int(head.get("Chunks", 0)) if head else 0):
                ids.update((self.store.get_record(KIND, f"ends#{name}#{number}") or {}).get("Ids", []))
            self._counted[name] = frozenset(ids)
        return self._counted[name]

    def delta(self, job: Job, name: str) -> tallies.Tally:
        """What ``job``'s end in slice ``name`` changes in its day's tally."""
        end = _ends_in(job, name)
        if end is None:
            return {}
        at_end = job if end == len(job.history) - 1 else tallies.as_of(job, end)
        delta = tallies.contribution(at_end)
        # Less what it added when it was last counted: its latest earlier end that was (an end
        # its owner retried before it was rolled up never was; nor an earlier end in this same
        # slice, where only the last one counts).
        for before in _ends_before(job, end):
            earlier = slice_of(job.history[before].at)
            if earlier < name and job.job_id in self.counted_in(earlier):
                tallies.add(delta, tallies.contribution(tallies.as_of(job, before)), -1)
                break
        return delta

    def _apply(self, key: str, parts: list[tuple[str, tallies.Tally]]) -> bool:
        """Add to tally ``key`` each ``(slice, delta)`` of ``parts`` whose slice it lacks."""
        for _ in range(20):
            stored = self.store.get_record(KIND, key)
            through = str(stored.get("Through", "")) if stored is not None else ""
            missing = [(name, delta) for name, delta in parts if name > through]
            if not missing:
                return False
            merged = tallies.unpack(stored) if stored else {}
            for _name, delta in missing:
                tallies.add(merged, delta)
            record = {**tallies.pack(merged), "Through": missing[-1][0]}
            if stored is None:
                if self.store.put_record(KIND, key, record, only_if_absent=True):
                    return True
            elif self.store.put_record(KIND, key, record, only_if={"Through": stored.get("Through")}):
                return True
        raise RuntimeError(f"the stats tally {key} kept changing under the rollup")


def _ends_in(job: Job, name: str) -> int | None:
    """The index of ``job``'s last end (history entry into a finished status) in slice ``name``."""
    for index in range(len(job.history) - 1, -1, -1):
        entry = job.history[index]
        if entry.to_status in TERMINAL and slice_of(entry.at) == name:
            return index
    return None


def _ends_before(job: Job, end: int) -> Iterator[int]:
    """The indexes of ``job``'s ends before ``job.history[end]``, latest first."""
    for index in range(end - 1, -1, -1):
        if job.history[index].to_status in TERMINAL:
            yield index


# --- reading --------------------------------------------------------------------------------


def day_tallies(store: JobStore, scope: str, days: Iterable[str]) -> dict[str, tuple[tallies.Tally, dict[str, str]]]:
    """The tally of ``scope`` for each of ``days`` (its parts added up) with the last slice each
    part has (part -> slice; a part not written yet: "")."""
    out: dict[str, tuple[tallies.Tally, dict[str, str]]] = {}
    for day in days:
        merged: tallies.Tally = {}
        through: dict[str, str] = {}
        for part in parts_of(scope):
            record = store.get_record(KIND, f"{scope}{part}#{day}")
            if record:
                tallies.add(merged, tallies.unpack(record))
            through[part] = str(record.get("Through", "")) if record else ""
        out[day] = (merged, through)
    return out


def counted_hours(store: JobStore, day: str) -> dict[str, int]:
    record = store.get_record(KIND, f"created#{day}")
    return {hour: int(n) for hour, n in (record or {}).get("Hours", {}).items()}


def pending_slices(cursor: Mapping[str, Any], now: datetime) -> Iterator[str]:
    """Slices not rolled yet, oldest first, up to the one ``now`` is in."""
    name = cursor["Ends"]
    last = slice_of(now)
    while name <= last:
        yield name
        name = next_slice(name)
