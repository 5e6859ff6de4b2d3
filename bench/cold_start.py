"""Benchmark the cold starts of the built Lambda functions against bare baselines.

    TRAINBOT_SAM_VENV=… .venv/bin/python bench/cold_start.py [--runs 5] [--build DIR]
        [--importtime NAME [--tree MS] | --profile NAME [--save-profile FILE] | --excess NAME]
        [--bare] [--against DIR] [--only NAME …]

What `sam build` made (``python -m infra.deploy.artifacts``, this machine's architecture; or
``--build`` a `sam build` output folder, e.g. one without bytecode to compare) runs as
tests/artifact runs it: each run a fresh, isolated ``python3.13 -I -S -B`` whose sys.path holds
only the artifact and the runtime's boto3, the environment template.yaml declares, moto and the
local stand-ins behind it. A figure is the CPU time (user + system, ``time.process_time`` in that
process) of importing the handler and its first invocation, the median of ``--runs``; wall times
are printed too but measure the neighbours on a shared machine. Ours and its baseline run in
turns, so a busy spell weighs on both; the import of the handler module alone is shown beside.

- the bot's first signed ``/train help`` against a bare slack-bolt app whose listener acks, and its
  first ``/train submit`` against a bare app that acks and hands the work to a lazy listener
  (both behind bolt's SlackRequestHandler; bench/cold_start_baselines.py);
- the bot's first ``/train help`` after a SnapStart restore (its init, with the imports
  bot/handler.py makes under SnapStart, is in the snapshot: only the invocation counts);
- the launcher's and the monitor's first scheduled run against a bare boto3 client's first call.

To see where a scenario's time goes: ``--importtime`` (its slowest imports, or ``--tree MS``
every import of at least MS in import order), ``--profile`` (cProfile on a CPU clock, and its
own time summed by package), ``--excess`` (what it imports that its baseline does not, by
package); ``--bare`` looks at the baseline instead. ``--against DIR`` runs another build's functions
(one made before a change: ``cp -a`` its ``.aws-sam/artifacts/<arch>-<hash>/build``) in the
same turns, for a before/after under the same load.

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


def cold_start(function, event: dict, *, with_init: bool = True) -> tuple[float, float, float]:
    """CPU and wall milliseconds of import + first invocation (or of the first invocation only:
    ``with_init=False``, as after a SnapStart restore) in a fresh process, and the CPU of the
    import alone (the handler module's: what the first invocation adds is the rest)."""
    fresh = function.cold()
    try:
        fresh.invoke(event)
        answer = fresh.invocations[-1]
    finally:
        fresh.close()
    init = answer["init_cpu_ms"] * with_init
    return init + answer["cpu_ms"], answer["init_ms"] * with_init + answer["ms"], init


def paired_runs(ours, theirs, event: dict, runs: int, *, with_init: bool = True, against=None) -> list[tuple[float, ...]]:
    """The medians of :func:`cold_start` for ``ours``, its baseline and (if given) ``against``
    (the same function from another build), run in turns (ours, theirs, against, ours, …) so
    that a busy spell on a shared machine weighs on every side alike."""
    sides: list[tuple] = [(ours, with_init), (theirs, True)] + ([(against, with_init)] if against is not None else [])
    rows: list[list[tuple[float, float, float]]] = [[] for _ in sides]
    for _ in range(runs):
        for (function, init), row in zip(sides, rows, strict=True):
            row.append(cold_start(function, event, with_init=init))
    return [_medians(row) for row in rows]


def _medians(rows: list[tuple[float, float, float]]) -> tuple[float, ...]:
    return tuple(statistics.median(column) for column in zip(*rows, strict=True))


def import_times(function, event: dict, logs: Path) -> list[tuple[int, int, int, str]]:
    """(cumulative µs, self µs, depth, module) of every import of one cold start (``-X importtime``)."""
    logs.mkdir(parents=True, exist_ok=True)
    fresh = function.cold(python_flags=("-X", "importtime"), logs=logs)
    try:
        fresh.invoke(event)
    finally:
        fresh.close()
    rows = []
    for log in logs.glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if match:
                rows.append((int(match[2]), int(match[1]), len(match[3]) // 2, match[4]))
    return rows


def import_profile(function, event: dict, logs: Path, top: int = 60, tree_ms: float | None = None) -> str:
    """The slowest imports (cumulative milliseconds) of one cold start; with ``tree_ms``, every
    import of at least that many, as a tree in import order (cumulative, self)."""
    rows = import_times(function, event, logs)
    if tree_ms is not None:
        return "\n".join(
            f"  {cumulative / 1000:8.1f} {own / 1000:6.1f}  {'  ' * depth}{name}"
            for cumulative, own, depth, name in rows
            if cumulative >= tree_ms * 1000
        )
    rows.sort(reverse=True)
    return "\n".join(f"  {cumulative / 1000:8.1f} ms  {'  ' * depth}{name}" for cumulative, _, depth, name in rows[:top])


def import_excess(function, event: dict, baseline, logs: Path, top: int = 25) -> str:
    """What one cold start imports that its baseline does not: the self time of those modules,
    summed by top-level package (``-X importtime`` inflates every figure; compare them, not add)."""
    ours = import_times(function, event, logs / "ours")
    theirs = {name for _, _, _, name in import_times(baseline, event, logs / "theirs")}
    by_package: dict[str, list[int]] = {}
    for _, own, _, name in ours:
        if name not in theirs:
            by_package.setdefault(name.split(".")[0], []).append(own)
    rows = sorted(((sum(v), len(v), k) for k, v in by_package.items()), reverse=True)
    total = sum(r[0] for r in rows)
    lines = [f"  {own / 1000:8.1f} ms  {count:4d} modules  {package}" for own, count, package in rows]
    slowest = sorted((own, name) for _, own, _, name in ours if name not in theirs)[-top:]
    lines += ["slowest of them (self time):"] + [f"  {own / 1000:8.1f} ms  {name}" for own, name in reversed(slowest)]
    return f"imported by {function.name} and not by its baseline: {total / 1000:.1f} ms (self times)\n" + "\n".join(lines)


# The runtime under cProfile with a CPU clock: `-m cProfile` times by the wall clock, which
# counts the waits on the stand-ins (and the neighbours on a shared machine) as our time.
_PROFILED = """
import cProfile, runpy, sys, time
sys.argv = sys.argv[1:]
profile = cProfile.Profile(time.process_time)
profile.enable()
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    profile.disable()
    profile.dump_stats({out!r})
"""


def cpu_profile(function, event: dict, where: Path, top: int = 50, save: Path | None = None) -> str:
    """Where one cold start (import + first invocation) spends its CPU time, from cProfile."""
    import io
    import pstats

    out = where / f"{function.name}.prof"
    fresh = function.cold(python_flags=("-c", _PROFILED.format(out=str(out))))
    try:
        fresh.invoke(event)
    finally:
        fresh.close()
    if save is not None:
        shutil.copy(out, save)
    text = io.StringIO()
    stats = pstats.Stats(str(out), stream=text)
    stats.sort_stats("cumulative").print_stats(top)
    return text.getvalue() + own_time_by_package(stats, function)


def own_time_by_package(stats, function) -> str:
    """cProfile's own (``tottime``) seconds summed by top-level package: where the CPU goes,
    whoever called it (the profiler inflates Python-heavy code more than C)."""
    roots = [str(function.artifact), str(function.boto3_dir)]
    totals: dict[str, float] = {}
    for (path, _, name), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        root = next((r for r in roots if path.startswith(r + "/")), None)
        if root is not None:
            package = path[len(root) + 1 :].split("/")[0].removesuffix(".py")
        elif path == "~":
            package = name  # a builtin: marshal.loads (reading bytecode), __build_class__, …
        elif path.startswith("<frozen"):
            package = "(import system)" if "importlib" in path else path
        else:
            package = "(stdlib) " + Path(path).name.removesuffix(".py")
        totals[package] = totals.get(package, 0.0) + own
    rows = sorted(((t, p) for p, t in totals.items()), reverse=True)[:30]
    return "own time by package:\n" + "\n".join(f"  {t * 1000:8.1f} ms  {p}" for t, p in rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build", type=Path, help="a `sam build` output folder (default: build this machine's twin)")
    parser.add_argument(
        "--against", type=Path, metavar="DIR", help="another `sam build` output (e.g. before a change), run in the same turns: before/after"
    )
    parser.add_argument("--importtime", metavar="SCENARIO", help="print the slowest imports of one scenario and exit")
    parser.add_argument("--profile", metavar="SCENARIO", help="print one scenario's cProfile (cumulative) and exit")
    parser.add_argument("--excess", metavar="SCENARIO", help="print what one scenario imports that its baseline does not, and exit")
    parser.add_argument("--tree", type=float, metavar="MS", help="--importtime: every import of at least MS, as a tree")
    parser.add_argument("--bare", action="store_true", help="--importtime/--profile: the scenario's baseline instead")
    parser.add_argument("--save-profile", type=Path, metavar="FILE", help="--profile: keep the cProfile data in FILE")
    parser.add_argument(
        "--only", nargs="+", metavar="SCENARIO", help="bot-help bot-submit bot-help-restored launcher monitor (default: all)"
    )
    args = parser.parse_args()

    from tests.artifact.stack import artifact_stack

    if args.build:
        build = args.build.resolve()  # the baselines link to its files: a relative link would dangle
        functions = {p.name: p for p in sorted(build.iterdir()) if p.is_dir()}
        built = artifacts.Build(artifacts.machine_architecture(), build, functions)
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
        _, function, event, _, baseline = scenarios[args.importtime]
        print(import_profile(baseline if args.bare else function, event, tmp / "importtime", tree_ms=args.tree))
        return
    if args.profile:
        _, function, event, _, baseline = scenarios[args.profile]
        print(cpu_profile(baseline if args.bare else function, event, tmp, save=args.save_profile))
        return
    if args.excess:
        _, function, event, _, baseline = scenarios[args.excess]
        print(import_excess(function, event, baseline, tmp / "importtime"))
        return

    print(
        f"cold start: import + first invocation, CPU ms (wall ms) [the handler module's import alone], median of {args.runs} fresh isolated "
        f"python3.13 processes; artifact {built.directory}"
    )
    missing = {name: len(artifacts.modules_without_bytecode(path)) for name, path in built.functions.items()}
    print("  modules without bytecode: " + ", ".join(f"{name} {count}" for name, count in missing.items()))
    figures = {}
    for key, (label, function, event, bare_label, baseline) in scenarios.items():
        if args.only and key not in args.only:
            continue
        against = function.cold(artifact=args.against.resolve() / function.artifact.name) if args.against else None
        ours, theirs, *before = paired_runs(function, baseline, event, args.runs, with_init=key != "bot-help-restored", against=against)
        figures[key] = ours[0]
        print(
            f"  {label:<26} {ours[0]:7.0f} ({ours[1]:5.0f}) [import {ours[2]:3.0f}]"
            f"   {bare_label:<28} {theirs[0]:7.0f} ({theirs[1]:5.0f}) [import {theirs[2]:3.0f}]"
            f"   ratio {ours[0] / theirs[0]:5.2f}x"
            + "".join(f"   --against: {b[0]:7.0f} ({b[1]:5.0f}) [import {b[2]:3.0f}] ratio {b[0] / theirs[0]:5.2f}x" for b in before)
        )
    print("estimated wall time on Lambda (CPU ms * 1769 / memory MB):")
    print("  " + " " * 26 + "".join(f"{memory:>9} MB" for memory in MEMORY_SIZES))
    for key, cpu in figures.items():
        print(f"  {scenarios[key][0]:<26}" + "".join(f"{cpu * ONE_VCPU_MB / memory:>9.0f} ms" for memory in MEMORY_SIZES))


if __name__ == "__main__":
    main()
