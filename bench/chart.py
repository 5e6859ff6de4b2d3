"""Measure the chart function as built, to choose its memory: time and peak memory of a cold start.

    TRAINBOT_SAM_VENV=… .venv/bin/python bench/chart.py [--runs 3] [--days 90] [--jobs-per-day 30]

The chart function's artifact (``python -m infra.deploy.artifacts``, this machine's architecture)
runs as tests/artifact runs it: a fresh, isolated ``python3.13 -I -S -B`` per run whose sys.path
holds only the artifact and the runtime's boto3, the environment template.yaml declares (each
run with an empty ``MPLCONFIGDIR``, as a new Lambda environment's /tmp is: matplotlib builds its
font cache there), moto and the Slack stand-in behind it. The table holds ``--days`` of a known
history (tests/stats_history.py), ``--jobs-per-day`` jobs a day, and the request asks for all of
it: the longest chart `/train stats` draws by default is 14 days, so this is a heavy one.

Printed: CPU ms of import + first invocation (the cold start a user waits for) and of a warm
invocation, the peak resident memory (Lambda's "Max Memory Used"), the PNG's size, and what the
CPU time means in wall time at a few memory sizes (Lambda gives 1 vCPU per 1,769 MB).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._offline import offline_aws_env  # noqa: E402

offline_aws_env()

from infra.deploy import artifacts  # noqa: E402

ONE_VCPU_MB = 1769
MEMORY_SIZES = (512, 1024, 1536, 1769)


def history(days: int, per_day: int):
    """About ``per_day`` jobs on each of the last ``days`` days: known_history's shapes, renamed,
    dated from now (the chart function reads its own clock)."""
    from backend.domain.times import utcnow
    from tests.stats_history import known_history

    now, jobs = utcnow(), []
    copies = max(1, per_day // len(known_history(now)))
    for day in range(days):
        for copy in range(copies):
            for job in known_history(now - timedelta(days=day)):
                jobs.append(job.model_copy(update={"job_id": f"{job.job_id}-d{day}-c{copy}"}))
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--jobs-per-day", type=int, default=30)
    args = parser.parse_args()

    from slack_sdk import WebClient

    from backend.domain.charts import ChartRequest
    from backend.domain.model import Owner
    from tests.artifact.stack import artifact_stack
    from tests.bot_fixtures import CHANNEL, TEAM, TOKEN, USER
    from tests.stats_history import seed

    built = artifacts.build(artifacts.machine_architecture())
    with tempfile.TemporaryDirectory(prefix="chart-bench-") as tmp, artifact_stack(built, Path(tmp)) as stack:
        jobs = history(args.days, args.jobs_per_day)
        seed(stack.client("dynamodb"), stack.table, jobs)
        chart = stack.functions["ChartFunction"]
        slack = WebClient(token=TOKEN, base_url=stack.slack.api_url)
        cold, warm, peak, sizes = [], [], [], []
        for run in range(args.runs):
            root = slack.chat_postMessage(channel=CHANNEL, text=f"stats, run {run}")["ts"]  # the summary
            request = ChartRequest(key=f"bench-{run}", scope="all", days=args.days, requester=Owner(team_id=TEAM, user_id=USER),
                                   channel_id=CHANNEL, thread_ts=root)
            cache = Path(tmp) / f"mplconfig-{run}"  # a new environment's empty /tmp
            fresh = chart.cold(environment={**chart.environment, "MPLCONFIGDIR": str(cache)})
            try:
                first = fresh.invoke(request.event())
                again = fresh.invoke(request.model_copy(update={"key": f"bench-{run}-warm"}).event())
                assert first["outcome"] == again["outcome"] == "posted", (first, again)
                a, b = fresh.invocations
            finally:
                fresh.close()
            cold.append(a["init_cpu_ms"] + a["cpu_ms"])
            warm.append(b["cpu_ms"])
            peak.append(max(a["max_rss_mb"], b["max_rss_mb"]))
        sizes = [len(f["content"]) for f in stack.slack.files]
    print(f"chart function ({built.architecture} twin, {artifacts.tree_size(chart.artifact) / artifacts.MB:.1f} MB unzipped): "
          f"{len(jobs):,} jobs over {args.days} days, median of {args.runs} fresh isolated python3.13 processes")
    print(f"  cold start (import + first chart)   {statistics.median(cold):7.0f} CPU ms")
    print(f"  warm chart                          {statistics.median(warm):7.0f} CPU ms")
    print(f"  peak memory (max RSS)               {max(peak):7.0f} MB")
    print(f"  PNG                                 {statistics.median(sizes) / 1024:7.0f} KB")
    print("estimated wall time on Lambda (CPU ms * 1769 / memory MB):")
    print("  " + " " * 34 + "".join(f"{memory:>9} MB" for memory in MEMORY_SIZES))
    for label, cpu in (("cold start", statistics.median(cold)), ("warm chart", statistics.median(warm))):
        print(f"  {label:<34}" + "".join(f"{cpu * ONE_VCPU_MB / memory:>9.0f} ms" for memory in MEMORY_SIZES))


if __name__ == "__main__":
    main()
