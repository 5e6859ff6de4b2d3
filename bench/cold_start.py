"""Benchmark the cold starts of the built Lambda functions against bare baselines.

    TRAINBOT_SAM_VENV=… .venv/bin/python bench/cold_start.py [--runs 5] [--build DIR]
        [--importtime NAME | --profile NAME] [--only NAME …]

What `sam build` made (``python -m infra.deploy.artifacts``, this machine's architecture; or
``--build`` a `sam build` output folder, e.g. one without bytecode to compare) runs as
tests/artifact runs it: each run a fresh, isolated ``python3.13 -I -S -B`` whose sys.path holds
only the artifact and the runtime's boto3, the environment template.yaml declares, moto and the
local stand-ins behind it. A figure is the CPU time (user + system, ``time.process_time`` in that
process) of importing the handler and its first invocation, the median of ``--runs``; wall times
are printed too but measure the neighbours on a shared machine.

- the bot's first signed ``/train help`` against a bare slack-bolt app whose listener acks, and its
  first ``/train submit`` against a bare app that acks and hands the work to a lazy listener
  (both behind bolt's SlackRequestHandler; bench/cold_start_baselines.py);
- the bot's first ``/train help`` after a SnapStart restore (its init, with the imports
  bot/handler.py makes under SnapStart, is in the snapshot: only the invocation counts);
- the launcher's and the monitor's first scheduled run against a bare boto3 client's first call.

Lambda gives a function CPU in proportion to its memory (1,769 MB is one vCPU), so a CPU time
``t`` takes about ``t * 1769 / memory`` of wall time there; the table at the end says what that is
at a few memory sizes.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._offline import offline_aws_env  # noqa: E402

offline_aws_env()

from infra.deploy import artifacts  # noqa: E402

ONE_VCPU_MB = 1769
MEMORY_SIZES = (512, 1024, 1536, 1769)


def baseline_artifact(artifact: Path, where: Path) -> Path:
    """``artifact``'s packages (links) plus the baseline handlers, compiled like the artifact."""
    if where.exists():
        return where
    where.mkdir(parents=True)
    for entry in artifact.iterdir():
        (where / entry.name).symlink_to(entry)
    shutil.copy(Path(__file__).with_name("cold_start_baselines.py"), where / "cold_start_baselines.py")
    subprocess.run(
        [
            str(artifacts.find_python()),
            "-m",
            "compileall",
            "-q",
            "--invalidation-mode",
            "unchecked-hash",
            str(where / "cold_start_baselines.py"),
        ],
        check=True,
    )
    return where


def cold_runs(function, event: dict, runs: int, *, with_init: bool = True) -> tuple[float, float]:
    """Median CPU and wall milliseconds of import + first invocation (or of the first invocation
    only: ``with_init=False``, as after a SnapStart restore), each run a fresh process."""
    cpu, wall = [], []
    for _ in range(runs):
        fresh = function.cold()
        try:
            fresh.invoke(event)
            answer = fresh.invocations[-1]
        finally:
            fresh.close()
        cpu.append(answer["init_cpu_ms"] * with_init + answer["cpu_ms"])
        wall.append(answer["init_ms"] * with_init + answer["ms"])
    return statistics.median(cpu), statistics.median(wall)


def import_profile(function, event: dict, logs: Path, top: int = 60) -> str:
    """The slowest imports (cumulative microseconds) of one cold start, from ``-X importtime``."""
    fresh = function.cold(python_flags=("-X", "importtime"), logs=logs)
    try:
        fresh.invoke(event)
    finally:
        fresh.close()
    rows = []
    for log in logs.glob(f"{function.name}-*.log"):
        for line in log.read_text(errors="replace").splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if match:
                rows.append((int(match[2]), len(match[3]) // 2, match[4]))
    rows.sort(reverse=True)
    return "\n".join(f"  {cumulative / 1000:8.1f} ms  {'  ' * depth}{name}" for cumulative, depth, name in rows[:top])


def cpu_profile(function, event: dict, where: Path, top: int = 50) -> str:
    """Where one cold start (import + first invocation) spends its time, from cProfile."""
    import io
    import pstats

    out = where / f"{function.name}.prof"
    fresh = function.cold(python_flags=("-m", "cProfile", "-o", str(out)))
    try:
        fresh.invoke(event)
    finally:
        fresh.close()
    text = io.StringIO()
    pstats.Stats(str(out), stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build", type=Path, help="a `sam build` output folder (default: build this machine's twin)")
    parser.add_argument("--importtime", metavar="SCENARIO", help="print the slowest imports of one scenario and exit")
    parser.add_argument("--profile", metavar="SCENARIO", help="print one scenario's cProfile (cumulative) and exit")
    parser.add_argument(
        "--only", nargs="+", metavar="SCENARIO", help="bot-help bot-submit bot-help-restored launcher monitor (default: all)"
    )
    args = parser.parse_args()

    from tests.artifact.stack import artifact_stack

    if args.build:
        functions = {p.name: p for p in sorted(args.build.iterdir()) if p.is_dir()}
        built = artifacts.Build(artifacts.machine_architecture(), args.build, functions)
    else:
        built = artifacts.build(artifacts.machine_architecture())

    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        for folder in ("logs", "importtime"):
            (Path(tmp) / folder).mkdir()
        with artifact_stack(built, Path(tmp) / "logs") as stack:
            measure(args, built, stack, Path(tmp))


def measure(args: argparse.Namespace, built: artifacts.Build, stack, tmp: Path) -> None:
    from infra.local.standins.slack_signing import signed_headers, slash_command_body
    from tests.bot_fixtures import CHANNEL, GOOD_SUBMIT, SECRET, TEAM, TOKEN, USER
    from tests.fixtures import samples

    def signed(text: str) -> dict:
        body = slash_command_body(text=text, user_id=USER, team_id=TEAM, channel_id=CHANNEL)
        return samples.function_url_event(body, signed_headers(SECRET, body))

    bot, launcher, monitor = (stack.functions[n] for n in ("BotFunction", "LauncherFunction", "MonitorFunction"))
    stack.lam.add(bot.name, lambda event, context: None)  # only the first request is measured
    bare_env = {"BASELINE_SIGNING_SECRET": SECRET, "BASELINE_BOT_TOKEN": TOKEN}

    def bare(function, handler: str):
        where = baseline_artifact(function.artifact, tmp / f"baseline-{function.logical_id}-{handler}")
        return function.cold(
            artifact=where,
            handler=f"cold_start_baselines.{handler}",
            environment={**function.environment, **bare_env, "LAMBDA_TASK_ROOT": str(where)},
        )

    scheduled = samples.scheduled_event()
    snap_start = {**bot.environment, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
    scenarios = {
        "bot-help": ("bot, first /train help", bot, signed("help"), "bare bolt, ack", bare(bot, "bolt_ack")),
        "bot-submit": ("bot, first /train submit", bot, signed(GOOD_SUBMIT), "bare bolt, ack + lazy", bare(bot, "bolt_lazy")),
        # As a SnapStart restore: the init (with the preload bot/handler.py does then) is in the
        # snapshot, so only the first invocation counts; Lambda's restore itself is not in it.
        "bot-help-restored": (
            "bot, /train help, restored",
            bot.cold(environment=snap_start),
            signed("help"),
            "bare bolt, ack",
            bare(bot, "bolt_ack"),
        ),
        "launcher": ("launcher, first run", launcher, scheduled, "bare boto3 client, 1st call", bare(launcher, "boto3_call")),
        "monitor": ("monitor, first sweep", monitor, scheduled, "bare boto3 client, 1st call", bare(monitor, "boto3_call")),
    }
    if args.importtime:
        _, function, event, _, _ = scenarios[args.importtime]
        print(import_profile(function, event, tmp / "importtime"))
        return
    if args.profile:
        _, function, event, _, _ = scenarios[args.profile]
        print(cpu_profile(function, event, tmp))
        return

    print(
        f"cold start: import + first invocation, CPU ms (wall ms), median of {args.runs} fresh isolated "
        f"python3.13 processes; artifact {built.directory}"
    )
    missing = {name: len(artifacts.modules_without_bytecode(path)) for name, path in built.functions.items()}
    print("  modules without bytecode: " + ", ".join(f"{name} {count}" for name, count in missing.items()))
    figures = {}
    for key, (label, function, event, bare_label, baseline) in scenarios.items():
        if args.only and key not in args.only:
            continue
        ours = cold_runs(function, event, args.runs, with_init=key != "bot-help-restored")
        theirs = cold_runs(baseline, event, args.runs)
        figures[key] = ours[0]
        print(
            f"  {label:<26} {ours[0]:7.0f} ({ours[1]:5.0f})   {bare_label:<28} {theirs[0]:7.0f} ({theirs[1]:5.0f})"
            f"   ratio {ours[0] / theirs[0]:5.2f}x"
        )
    print("estimated wall time on Lambda (CPU ms * 1769 / memory MB):")
    print("  " + " " * 26 + "".join(f"{memory:>9} MB" for memory in MEMORY_SIZES))
    for key, cpu in figures.items():
        print(f"  {scenarios[key][0]:<26}" + "".join(f"{cpu * ONE_VCPU_MB / memory:>9.0f} ms" for memory in MEMORY_SIZES))


if __name__ == "__main__":
    main()
