"""The `trainbot` command: scripts' way into Trainbot, and local mode.

    trainbot submit --spec job.yaml            trainbot status <JobId>
    trainbot sweep --spec sweep.yaml --yes     trainbot list [--all] [--status Failed]
    trainbot stop <JobId>                      trainbot retry <JobId>
    trainbot local [--demo] [--data DIR]       (the whole Trainbot on this machine)

Submits and sweeps go through the use case the bot calls (``backend.services.submit``: the same
validation, presets, JobId prefix and idempotency), to the table and topic given by
``--table``/``--topic`` or ``JOBS_TABLE_NAME``/``NOTIFY_TOPIC_ARN`` (``--local``: the running
`trainbot local`). Exit codes scripts can rely on: 0 ok, 2 usage or invalid spec, 3 no such
job, 4 not allowed (not your job, or not in a status that allows it), 5 AWS
unreachable/unavailable.

Beside this module: ``common`` (what every subcommand shares: options, wiring, exit codes),
``specs`` (spec files, words and flags as fields) and ``stats`` (`trainbot stats` and
`trainbot export`). None of them imports this one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, cast

from backend.entrypoints.cli import stats as stats_commands
from backend.entrypoints.cli.common import (
    NOT_FOUND,
    OK,
    REFUSED,
    UNAVAILABLE,
    USAGE,
    CliError,
    actor,
    add_common,
    apply_local_connection,
    build_container,
    common_parent,
)
from backend.entrypoints.cli.specs import request_fields

if TYPE_CHECKING:
    from backend.domain.model import Job

PROGRESS_THRESHOLD = 50

EPILOG = """\
examples:
  trainbot submit --spec job.yaml
  trainbot submit name=bert-lr3 image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest \\
      instance=ml.g5.xlarge output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole hp.lr=3e-5
  trainbot submit --spec job.yaml --name bert-lr4 --hp lr=1e-4
  trainbot sweep --spec job.yaml --hp lr=1e-5,3e-5,1e-4 --hp batch=16,32 --yes
  trainbot status bert-lr3-k2x9qz --json
  trainbot list --all --status Failed
  trainbot stop bert-lr3-k2x9qz && trainbot retry bert-lr3-k2x9qz
  trainbot local                # the whole Trainbot on this machine, with a Slack-like page
  trainbot local --demo         # a scripted run: exit code 0 only if every job ended as it should
  trainbot --local list --all   # the CLI against a running `trainbot local`

exit codes: 0 ok · 2 usage or invalid spec · 3 no such job · 4 not allowed (not your job,
or its status does not allow it) · 5 AWS unreachable or unavailable
"""

SPEC_HELP = """\
A spec is YAML with the keys of `/train submit`:
  name: bert-lr3
  image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest
  instance: ml.g5.xlarge
  count: 1
  input: s3://data-bucket/train        # or {train: s3://…, validation: s3://…}
  output: s3://out-bucket/runs
  role: arn:aws:iam::123456789012:role/SageMakerRole
  max_runtime: 1h
  spot: false
  priority: 5
  retries: 2
  preset: nlp                          # team defaults saved with /train preset save
  hp: {lr: 3e-5, epochs: 3}            # in a sweep spec, lists: {lr: [1e-5, 3e-5]}
  tags: {team: nlp}
Command-line key=value words and flags override the spec's values.
"""


# --- output ------------------------------------------------------------------------------------


class ProgressBar:
    """A progress bar on stderr (a TTY redraws one line; a pipe gets a line per 10 %)."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self._last_decile = -1
        self.calls = 0

    def __call__(self, done: int, total: int) -> None:
        self.calls += 1
        fraction = done / total if total else 1.0
        filled = int(self.width * fraction)
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{bar}] {done:,}/{total:,}"
        if self.stream.isatty():
            self.stream.write("\r" + line)
            if done >= total:
                self.stream.write("\n")
        else:
            decile = int(fraction * 10)
            if decile != self._last_decile:
                self.stream.write(line + "\n")
                self._last_decile = decile
        self.stream.flush()


def _job_summary(job: Job) -> dict[str, Any]:
    attempt = job.current_attempt
    return {
        "job_id": job.job_id,
        "name": job.name,
        "status": job.status.value,
        "owner": job.owner.key,
        "instance": f"{job.running_instance_type} x {job.job_args.instance_count}",
        "instance_types": job.instance_choices,
        "attempts": len(job.attempts),
        "last_reason": job.history[-1].reason if job.history else "",
        "training_job": attempt.name if attempt else None,
        "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
        "sweep_id": job.sweep_id,
    }


def _print_job(job: Job, out: TextIO) -> None:
    summary = _job_summary(job)
    print(f"{job.job_id}  {job.name}  {job.status.value}", file=out)
    fallback = f" (of {','.join(job.instance_choices)})" if job.fallback_types else ""
    print(f"  owner {summary['owner']} · {summary['instance']}{fallback} · priority {job.priority} · retries {job.algorithm_failures}/{job.retry_budget}", file=out)
    for attempt in job.attempts:
        took = ""
        if attempt.started_at and attempt.ended_at:
            took = f" {int((attempt.ended_at - attempt.started_at).total_seconds())} s"
        why = f" ({attempt.failure_class.value}: {attempt.reason[:80]})" if attempt.failure_class else ""
        on = f" on {job.instance_type_of(attempt)}" if job.fallback_types else ""
        print(f"  attempt {attempt.number} {attempt.name}{on}: {attempt.outcome.value}{took}{why}", file=out)
    for entry in job.history:
        before = entry.from_status.value if entry.from_status else "·"
        print(f"  {entry.at.isoformat(timespec='seconds')} {before} -> {entry.to_status.value}  {entry.reason[:100]}", file=out)


# --- commands ----------------------------------------------------------------------------------


def _print_estimate(submissions: Any, specs: list[Any], args: argparse.Namespace, out: TextIO, *, sweep: bool) -> int:
    """``--dry-run``: what the submission may cost and what the cost guard would do; writes nothing."""
    from backend.domain.cost import describe

    jobs = [spec.job_args for spec in specs]
    est = submissions.estimate(jobs)
    assessment = submissions.assess(jobs, actor(args), sweep=sweep)  # OverBudget: refused (exit 4)
    held = assessment.approval.reasons if assessment is not None and assessment.approval is not None else []
    if args.json:
        data = {
            "jobs": est.jobs, "instance_hours": round(est.instance_hours, 3), "by_type": est.by_type,
            "money": None if est.money is None else round(est.money, 2), "currency": est.currency,
            "prices_as_of": est.as_of, "needs_approval": held,
        }
        if assessment is not None and assessment.budget is not None:
            data["budget"] = {"team": assessment.budget.team, "week": assessment.budget.week,
                              "used_hours": round(assessment.budget.used_hours, 3), "budget_hours": assessment.budget.budget_hours}
        print(json.dumps(data), file=out)
        return OK
    print(f"dry run, nothing registered: {describe(est)}", file=out)
    for kind, hours in sorted(est.by_type.items()):
        print(f"  {kind}: {hours:,.2f} instance-hours", file=out)
    if assessment is not None and assessment.budget is not None:
        print(f"  budget: {assessment.budget.text()}", file=out)
    if held:
        print("  would wait for an admin's approval: " + "; ".join(held), file=out)
    return OK


def cmd_submit(args: argparse.Namespace, out: TextIO) -> int:
    fields = request_fields(args, sweep=False)
    submissions = build_container(args).submissions
    if args.dry_run:
        return _print_estimate(submissions, [submissions.spec(fields)], args, out, sweep=False)
    channel = args.channel or os.environ.get("TRAINBOT_LOCAL_CHANNEL") if args.local else args.channel
    registered = submissions.submit(
        fields, actor(args), token=args.idempotency_key or f"cli:{uuid.uuid4()}", channel_id=channel or None
    )
    job = registered.job
    if args.json:
        print(json.dumps({**_job_summary(job), "created": registered.created}), file=out)
    else:
        verb = "registered" if registered.created else "already registered"
        print(f"{verb} {job.job_id} ({job.name}, {job.status.value})", file=out)
        if job.is_held:
            print("  waiting for an admin's approval: " + "; ".join(job.approval.reasons if job.approval else []), file=out)
    return OK


def cmd_sweep(args: argparse.Namespace, out: TextIO) -> int:
    fields = request_fields(args, sweep=True)
    submissions = build_container(args).submissions
    plan = submissions.plan_sweep(fields, token=args.idempotency_key or f"cli:{uuid.uuid4()}")
    if args.dry_run:
        return _print_estimate(submissions, plan.specs, args, out, sweep=True)
    if plan.needs_confirmation and not args.yes:
        if not sys.stdin.isatty():
            raise CliError(f"this sweep has {plan.size:,} jobs (more than {submissions.sweep_confirm_size:,}); pass --yes to register them", USAGE)
        answer = input(f"Register {plan.size:,} jobs? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing registered", file=out)
            return OK
    progress = ProgressBar(f"registering {plan.name or 'sweep'}") if plan.size > PROGRESS_THRESHOLD and not args.quiet else None
    outcome = submissions.register_sweep(plan, actor(args), on_progress=progress)
    ids = outcome.job_ids
    if args.json:
        print(json.dumps({"sweep_id": outcome.sweep_id, "jobs": ids}), file=out)
    else:
        print(f"registered sweep {outcome.sweep_id}: {len(ids):,} jobs ({ids[0]} … {ids[-1]})", file=out)
    return OK


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    container = build_container(args)
    job = container.jobs.get(_job_id(args.job_id))
    if args.json:
        print(json.dumps(job.model_dump(mode="json", by_alias=True)), file=out)
    else:
        _print_job(job, out)
        _print_wait_reason(container, job, out)
    return OK


def _print_wait_reason(container: Any, job: Job, out: TextIO) -> None:
    """Why a queued job waits (the same reasons as `/train status` and `/train queue`)."""
    from backend.domain.status import QUEUED
    from backend.domain.waiting import describe

    if job.status not in QUEUED:
        return
    reason = container.queue.reason(job.job_id)
    if reason is not None:
        print("  waiting: " + "\n           ".join(describe(reason, container.clock())), file=out)


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    from backend.domain.status import JobStatus

    status = None
    if args.status:
        status = next((s for s in JobStatus if s.value.lower() == args.status.lower()), None)
        if status is None:
            raise CliError(f"{args.status!r} is not a status; one of {', '.join(s.value for s in JobStatus)}", USAGE)
    container = build_container(args)
    found: list[Job] = []
    cursor = None
    for _ in range(50):  # bounded: a status filter reads at most 50 pages
        if args.all:
            page = container.jobs.list_all(limit=max(args.limit, 25), cursor=cursor)
        else:
            page = container.jobs.list_owner(actor(args).owner, limit=max(args.limit, 25), cursor=cursor)
        found.extend(j for j in page.jobs if status is None or j.status is status)
        cursor = page.cursor
        if cursor is None or len(found) >= args.limit:
            break
    found = found[: args.limit]
    if args.json:
        print(json.dumps([_job_summary(j) for j in found]), file=out)
        return OK
    if not found:
        print("no jobs", file=out)
        return OK
    width = max(len(j.job_id) for j in found)
    for job in found:
        print(f"{job.job_id:<{width}}  {job.status.value:<10}  {len(job.attempts):>2} att  {job.owner.key:<20}  {job.name}", file=out)
    return OK


def cmd_stop(args: argparse.Namespace, out: TextIO) -> int:
    job = build_container(args).jobs.stop(_job_id(args.job_id), actor(args))
    print(json.dumps(_job_summary(job)) if args.json else f"{job.job_id}: {job.status.value}", file=out)
    return OK


def cmd_retry(args: argparse.Namespace, out: TextIO) -> int:
    job = build_container(args).jobs.retry(_job_id(args.job_id), actor(args))
    print(json.dumps(_job_summary(job)) if args.json else f"{job.job_id}: {job.status.value}", file=out)
    return OK


def cmd_approve(args: argparse.Namespace, out: TextIO) -> int:
    """An admin's decision on a held job (the approval card's buttons, for scripts and jobs
    submitted from the CLI): exit 0 when it changed the job, 4 when there was nothing to decide."""
    approvals = build_container(args).approvals
    who = actor(args).user_id
    if args.command == "approve":
        decision = approvals.approve(_job_id(args.job_id), who)
    else:
        decision = approvals.reject(_job_id(args.job_id), who, args.reason)
    job = decision.job
    if args.json:
        print(json.dumps({**_job_summary(job), "changed": decision.changed}), file=out)
    elif decision.changed:
        print(f"{job.job_id}: {args.command}d ({job.status.value})", file=out)
    else:
        approval = job.approval.state.value if job.approval else "not held"
        print(f"{job.job_id}: nothing changed ({job.status.value}, approval {approval})", file=out)
    return OK if decision.changed else REFUSED


def _job_id(value: str) -> str:
    from backend.domain.model import JOB_ID_PATTERN

    if not JOB_ID_PATTERN.match(value):
        raise CliError(f"{value!r} is not a job id (ids look like bert-lr3-k2x9qz)", USAGE)
    return value


def cmd_local(args: argparse.Namespace, out: TextIO) -> int:
    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("slack_bolt").setLevel(logging.ERROR)  # its token notes are about our wiring, on purpose
    if args.demo:
        from infra.local.demo import run_demo

        result = run_demo(fast=args.fast, out=out, data_dir=Path(args.data) if args.data else None)
        return OK if result.ok else 1
    return run_local(args, out)


def local_options(args: argparse.Namespace, out: TextIO):
    """`trainbot local`'s options as the stack's; ValueError names a malformed one."""
    from infra.local import LocalOptions, cost_guard_parameters

    parameters = cost_guard_parameters(
        budgets=args.budget,
        approve_over=args.approve_over,
        approve_types=args.approve_type,
        approve_sweeps=args.approve_sweeps,
        budget_mode=args.budget_mode,
    )
    return LocalOptions(
        parameters=parameters,
        port=args.port,
        data_dir=Path(args.data) if args.data else None,
        chaos=args.chaos,
        launcher_every=args.launcher_every,
        monitor_every=args.monitor_every,
        seed=args.seed,
        verbose=args.verbose,
        out=out,
    )


def run_local(args: argparse.Namespace, out: TextIO) -> int:
    import signal
    import threading

    from infra.local import LocalStack

    try:
        options = local_options(args, out)
    except ValueError as exc:
        print(f"trainbot local: {exc}", file=sys.stderr)
        return USAGE
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(options)
    try:
        stack.start()
        print(stack.banner(), file=out, flush=True)
        while not stopping.wait(0.5):
            pass
        print("\nstopping…", file=out, flush=True)
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped: every server closed", file=out, flush=True)
    return OK


# --- the parser --------------------------------------------------------------------------------


def _job_fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("fields", nargs="*", metavar="key=value", help="fields as in /train (name=… hp.lr=…)")
    parser.add_argument("--spec", metavar="FILE", help="a YAML spec (see below); '-' reads stdin")
    group = parser.add_argument_group("fields as flags (override the spec)")
    for flag in ("name", "image", "instance", "count", "volume", "input", "output", "role", "max-runtime", "max-wait", "spot", "checkpoint", "priority", "retries", "preset"):
        group.add_argument(f"--{flag}")
    group.add_argument("--hp", action="append", metavar="NAME=VALUE", help="a hyperparameter (repeatable)")
    group.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a tag (repeatable)")
    parser.add_argument("--idempotency-key", help="the same key never registers twice")


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="trainbot",
        description="Trainbot: chat-ops for SageMaker training, from scripts (or the whole thing locally).",
        epilog=EPILOG,
        formatter_class=formatter,
    )
    add_common(parser, suppress=False)  # `trainbot --local list` as well as `trainbot list --local`
    common = common_parent()
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    submit = commands.add_parser("submit", parents=[common], help="register one job", description="Register one training job.", epilog=SPEC_HELP + "\n" + EPILOG, formatter_class=formatter)
    _job_fields(submit)
    submit.add_argument("--channel", help="a Slack channel id for the job's thread")
    submit.add_argument("--dry-run", action="store_true", help="validate and show the estimate (and any approval or budget refusal); register nothing")
    submit.set_defaults(func=cmd_submit)

    sweep = commands.add_parser("sweep", parents=[common], help="register a grid of jobs", description="Register one job per combination of the hp lists.", epilog=SPEC_HELP + "\n" + EPILOG, formatter_class=formatter)
    _job_fields(sweep)
    sweep.add_argument("--yes", action="store_true", help="register large sweeps without asking")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--dry-run", action="store_true", help="validate and show the sweep's estimate; register nothing")
    sweep.set_defaults(func=cmd_sweep)

    status = commands.add_parser("status", parents=[common], help="one job's status, attempts and history", epilog=EPILOG, formatter_class=formatter)
    status.add_argument("job_id")
    status.set_defaults(func=cmd_status)

    listing = commands.add_parser("list", parents=[common], help="your jobs (or everyone's), newest first", epilog=EPILOG, formatter_class=formatter)
    listing.add_argument("--all", action="store_true", help="everyone's jobs")
    listing.add_argument("--status", help="only jobs in this status (e.g. Failed)")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(func=cmd_list)

    stop = commands.add_parser("stop", parents=[common], help="stop a job (yours, or any if you are an admin)", epilog=EPILOG, formatter_class=formatter)
    stop.add_argument("job_id")
    stop.set_defaults(func=cmd_stop)

    retry = commands.add_parser("retry", parents=[common], help="run a Failed or Stopped job again", epilog=EPILOG, formatter_class=formatter)
    retry.add_argument("job_id")
    retry.set_defaults(func=cmd_retry)

    approve = commands.add_parser("approve", parents=[common], help="release a job held for approval (admins)", epilog=EPILOG, formatter_class=formatter)
    approve.add_argument("job_id")
    approve.set_defaults(func=cmd_approve)
    reject = commands.add_parser("reject", parents=[common], help="stop a job held for approval, with a reason (admins)", epilog=EPILOG, formatter_class=formatter)
    reject.add_argument("job_id")
    reject.add_argument("--reason", required=True, help="what the owner reads in the job's thread")
    reject.set_defaults(func=cmd_approve)

    local = commands.add_parser(
        "local",
        help="run the whole Trainbot on this machine",
        description="AWS (moto), SageMaker and Slack stand-ins, the bot, launcher and monitor, and a Slack-like page, on 127.0.0.1. Ctrl-C stops it all.",
        epilog="examples:\n  trainbot local\n  trainbot local --port 0 --data ~/.trainbot --chaos\n  trainbot local --budget local=5 --approve-over 2 --chaos 0\n  trainbot local --demo\n",
        formatter_class=formatter,
    )
    local.add_argument("--port", type=int, default=8080, help="the page's port (default 8080; 0 = any free port)")
    local.add_argument("--data", metavar="DIR", help="keep the jobs table in DIR between runs (default: in memory)")
    local.add_argument("--chaos", type=float, nargs="?", const=0.5, default=0.05, metavar="LEVEL", help="fault injection, 0..1 (default 0.05; --chaos alone: 0.5)")
    local.add_argument("--launcher-every", type=float, default=2.0, metavar="S", help="launcher schedule in seconds (default 2)")
    local.add_argument("--monitor-every", type=float, default=5.0, metavar="S", help="monitor sweep schedule in seconds (default 5)")
    local.add_argument("--seed", type=int, help="seed the stand-ins' randomness")
    local.add_argument("--demo", action="store_true", help="a scripted run without a browser; exit 0 only if every job ended as it should")
    local.add_argument("--fast", action="store_true", help="with --demo: short durations (under a minute)")
    local.add_argument("--verbose", action="store_true", help="log the handlers' own lines too")
    guard = local.add_argument_group(
        "cost guard (the page's users are team 'local'; 'you' and 'admin' are admins)"
    )
    guard.add_argument("--budget", action="append", metavar="TEAM=HOURS", help="a weekly budget in instance-hours, e.g. local=5 or '*=5' (repeatable)")
    guard.add_argument("--budget-mode", choices=["refuse", "approve"], help="past the budget: refuse (default) or hold for an admin")
    guard.add_argument("--approve-over", type=float, metavar="HOURS", help="hold submissions estimated above this many instance-hours for an admin")
    guard.add_argument("--approve-type", action="append", metavar="TYPE", help="an instance type that always needs approval (repeatable)")
    guard.add_argument("--approve-sweeps", type=int, metavar="N", help="hold sweeps of more than N jobs for an admin")
    local.set_defaults(func=cmd_local)

    stats_commands.add_commands(commands)
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, a usage error 2
        return int(exc.code or 0)
    # The CLI is plain text: a person Trainbot's sentences name as Slack's ``<@U…>`` (history
    # reasons, refusals, budget lines) is shown as the id (backend.domain.people); --json
    # output is data and passes as stored.
    err = cast(TextIO, PlainText(err))
    if not getattr(args, "json", False):
        out = cast(TextIO, PlainText(out))
    return run(args, out, err)


class PlainText:
    """A text stream that writes through :func:`backend.domain.people.plain` (the rest of the
    stream's interface is its target's)."""

    def __init__(self, target: TextIO) -> None:
        self._target = target

    def write(self, text: str) -> int:
        from backend.domain.people import plain

        self._target.write(plain(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from backend.errors import (
        BackendUnavailable,
        ConfigError,
        IllegalTransition,
        InvalidRequest,
        JobNotFound,
        NotAuthorized,
        StoreUnavailable,
    )
    from backend.services.budget import OverBudget

    func: Callable[[argparse.Namespace, TextIO], int] = args.func
    try:
        if getattr(args, "local", False) and args.command != "local":
            apply_local_connection(getattr(args, "local_file", None))
        return func(args, out)
    except CliError as exc:
        print(f"trainbot: {exc}", file=err)
        return exc.code
    except OverBudget as exc:
        print("trainbot: refused: " + "; ".join(exc.problems), file=err)
        return REFUSED
    except InvalidRequest as exc:
        print("trainbot: invalid request:", file=err)
        for problem in exc.problems:
            print(f"  - {problem}", file=err)
        usage = getattr(exc, "usage", "")
        if usage:
            print("usage (as in /train):\n  " + usage.replace("\n", "\n  "), file=err)
        return USAGE
    except ConfigError as exc:
        print(f"trainbot: {exc}", file=err)
        return USAGE
    except JobNotFound as exc:
        print(f"trainbot: {exc}", file=err)
        return NOT_FOUND
    except IllegalTransition as exc:
        print(f"trainbot: not allowed now: {exc.job_id} is {exc.from_status}", file=err)
        return REFUSED
    except NotAuthorized as exc:
        print(f"trainbot: not allowed: {exc}", file=err)
        return REFUSED
    except (StoreUnavailable, BackendUnavailable) as exc:
        print(f"trainbot: AWS unavailable: {exc}", file=err)
        return UNAVAILABLE
    except KeyboardInterrupt:
        print("trainbot: interrupted", file=err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
