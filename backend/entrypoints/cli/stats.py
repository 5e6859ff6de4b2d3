"""`trainbot stats` and `trainbot export`: job history from the command line.

    trainbot stats [--all | --mine | --user U123] [--days 14] [--preset nlp] [--png out.png] [--json]
    trainbot export --since 2026-10-01 [--until …] [--format csv|jsonl] [--out jobs.csv]

``backend.entrypoints.cli`` adds these with :func:`add_commands` and runs them: settings come from
the environment with ``--table``/``--region`` (or ``--local``) on top
(:func:`backend.entrypoints.cli.common.build_container`), and problems are typed errors its
``run`` maps to exit codes (2 usage or config, 5 AWS unavailable). Both read only the days asked for, through the ``ByDay`` index; ``export``
streams, so months of history never sit in memory.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from backend.entrypoints.cli.common import build_container, common_parent, user_of

STATS_EPILOG = """\
examples:
  trainbot stats                        # everyone's jobs, last 14 days
  trainbot stats --mine --days 30       # yours ($TRAINBOT_USER or your OS user)
  trainbot stats --user U0ALICE --preset nlp --png stats.png   # someone's
  trainbot stats --json | jq .success_rate
"""
EXPORT_EPILOG = """\
examples:
  trainbot export --since 2026-10-01 --format csv --out jobs.csv
  trainbot export --since 2026-11-01T00:00:00Z --until 2026-11-08 --format jsonl > week.jsonl

One row per job created in the window: ids, owner, status, instance type and count, created /
first launched / ended times, queue wait and run seconds, attempts, retries and their causes,
billable seconds and instance-hours, the last failure class and reason. Load it with
pandas.read_csv / pandas.read_json(lines=True).
"""


def add_commands(subparsers: Any) -> None:
    """Add `stats` and `export` to the `trainbot` command's subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    parents = [common_parent()]

    stats = subparsers.add_parser(
        "stats",
        parents=parents,
        help="jobs by status, success rate, retries by cause, waits, run times, instance-hours",
        description="How jobs went over the last days, from the job history (reads only those days).",
        epilog=STATS_EPILOG,
        formatter_class=formatter,
    )
    scope = stats.add_mutually_exclusive_group()
    scope.add_argument("--all", action="store_true", help="everyone's jobs (the default)")
    scope.add_argument("--mine", action="store_true", help="your jobs only (--user names someone else)")
    stats.add_argument("--days", type=int, default=14, help="how many days back (1-366, default 14)")
    stats.add_argument("--preset", help="only jobs submitted with this preset")
    stats.add_argument("--png", metavar="FILE", help="also write the chart (jobs per day by status, retries by cause)")
    stats.set_defaults(func=cmd_stats)

    export = subparsers.add_parser(
        "export",
        parents=parents,
        help="job history as CSV or JSON lines, for a notebook",
        description="Write one row per job created since a time.",
        epilog=EXPORT_EPILOG,
        formatter_class=formatter,
    )
    export.add_argument("--since", required=True, help="YYYY-MM-DD or an ISO-8601 time (UTC unless it says)")
    export.add_argument("--until", help="YYYY-MM-DD (that whole day) or an ISO-8601 time (default: now)")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl")
    export.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(func=cmd_export)


def _usage(message: str) -> Exception:
    from backend.errors import InvalidRequest

    return InvalidRequest([message])


def _owner(args: argparse.Namespace) -> str | None:
    """Whose jobs: everyone's (None) or a user id, matched in any team (a Slack user's jobs and
    the CLI's carry different team ids). ``--mine``: ``--user``, $TRAINBOT_USER or the OS user."""
    if getattr(args, "all", False):
        return None
    if getattr(args, "user", None):
        return args.user
    if getattr(args, "mine", False):
        return user_of(args)
    return None


# --- commands ----------------------------------------------------------------------------------


def cmd_stats(args: argparse.Namespace, out: TextIO) -> int:
    from backend.services import stats

    if not 1 <= args.days <= stats.MAX_DAYS:
        raise _usage(f"--days must be between 1 and {stats.MAX_DAYS}")
    container = build_container(args, notify=False)
    result = stats.collect(
        container.store,
        _owner(args),
        args.days,
        args.preset,
        container.clock(),
        retention_days=container.settings.retention_days,
        prices=container.cost_guard.prices,
        team_of=container.settings.team_of,
        plans=_plans(container),
    )
    if args.png:
        from backend.services.chart import render  # matplotlib: only when a chart is asked for

        chart = render(result)
        try:
            Path(args.png).write_bytes(chart.png)
        except OSError as exc:
            raise _usage(f"cannot write {args.png}: {exc.strerror or exc}") from exc
    budget = _budget(container, args)
    if getattr(args, "json", False):
        data = stats_json(result)
        if budget is not None:
            data["budget"] = asdict(budget)
        print(json.dumps(data), file=out)
    else:
        print(stats.format_text(result), file=out)
        if budget is not None:
            print(f"this week: {budget.text()}", file=out)
        if args.png:
            print(f"chart written to {args.png}", file=out)
    return 0


def _budget(container: Any, args: argparse.Namespace) -> Any:
    """The week's usage against the budget of the asker's team (None: budgets are off)."""
    if container.budgets is None:
        return None
    return container.budgets.check(user_of(args))


def _plans(container: Any) -> dict[str, Any]:
    """The training plans as the launcher last read them (the ``plans#board`` record)."""
    board = container.plans.board()
    return dict(board.plans) if board is not None else {}


def stats_json(result: Any) -> dict[str, Any]:
    data = asdict(result)
    data["window"] = {"since": result.window.since.isoformat(), "until": result.window.until.isoformat()}
    data["computed_at"] = result.computed_at.isoformat() if result.computed_at else None
    data["coverage"] = result.coverage()
    data["total_retries"] = result.total_retries
    return data


def parse_time(value: str, *, end_of_day: bool = False) -> datetime:
    """``YYYY-MM-DD`` (its start, or with ``end_of_day`` its last microsecond) or ISO-8601;
    naive times are UTC. ValueError otherwise."""
    from datetime import timedelta

    from backend.domain.times import to_utc

    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1, microseconds=-1) if end_of_day else day
        return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an ISO-8601 time") from None


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    from backend.services import export

    try:
        since = parse_time(args.since)
        until_given = parse_time(args.until, end_of_day=True) if args.until else None
    except ValueError as exc:
        raise _usage(str(exc)) from exc
    container = build_container(args, notify=False)
    until = until_given or container.clock()
    if since > until:
        raise _usage("--since is after --until")
    if not args.out:
        export.export(container.store, since, until, out, args.format)
        return 0
    try:
        with open(args.out, "w", encoding="utf-8", newline="") as target:
            count = export.export(container.store, since, until, target, args.format)
    except OSError as exc:
        raise _usage(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"exported {count:,} jobs to {args.out}", file=out)
    return 0

