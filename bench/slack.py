"""Slack at team scale: a large sweep through the whole lifecycle, told in Slack.

A ``/train sweep`` of ``--jobs`` combinations is sent, signed, through the bot's template
handler; the launcher's and monitor's handlers run it to the end on one simulated clock (moto
in-process, the SageMaker stand-in with ``--capacity`` instances, the Slack stand-in enforcing
Slack's documented rate limits). Prints what Slack's users and limits saw and what DynamoDB
was asked:

- messages posted, owner @-mentions, the most posts in one channel within 10 s, the most
  updates of one message and of the app within a minute, 429s answered;
- time to drain: simulated time from the sweep's submission until every job has ended and the
  notification outbox is empty (and the wall time the run took);
- DynamoDB items written and read per job, everything included (bot, launcher, monitor).

Usage: ``.venv/bin/python bench/slack.py [--jobs 2000] [--capacity 200] [--failing 0|<jobs>]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--capacity", type=int, default=200, help="concurrent ml.g5.xlarge instances SageMaker gives")
    parser.add_argument("--failing", type=int, default=0, help="0, or --jobs: every job fails (AlgorithmError, no retries)")
    args = parser.parse_args()

    import logging
    import os

    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    logging.disable(logging.WARNING)
    from moto import mock_aws

    from infra.local.standins.sagemaker import ALGORITHM_ERROR, HP_OUTCOME
    from tests.bot_fixtures import CHANNEL, USER
    from tests.slack_world import SlackWorld

    with mock_aws(), SlackWorld(capacity=args.capacity) as world:
        # Two hp dimensions (a × b = jobs): a command stays under Slack's 4,000 characters.
        a = next(d for d in range(int(args.jobs**0.5), 0, -1) if args.jobs % d == 0)
        grid = f"hp.a={','.join(str(i) for i in range(a))} hp.b={','.join(str(i) for i in range(args.jobs // a))}"
        if args.failing:
            if args.failing != args.jobs:
                raise SystemExit("--failing is 0 or all of --jobs")
            grid += f" hp.{HP_OUTCOME}={ALGORITHM_ERROR}"
        text = (
            "sweep name=big image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest instance=ml.g5.xlarge "
            "output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime=1h retries=0 " + grid
        )
        wall = time.perf_counter()
        started = world.stack.clock()
        world.command(text)
        ids = world.job_ids()
        if len(ids) != args.jobs:
            raise SystemExit(f"the sweep registered {len(ids)} jobs: {world.bot.ephemerals()[-1:]}")
        registered = time.perf_counter() - wall
        jobs = world.settle(ids, max_ticks=5000)
        drained = world.stack.clock() - started
        wall = time.perf_counter() - wall

        traffic = world.slack.traffic()
        ended = {}
        for job in jobs:
            ended[job.status.value] = ended.get(job.status.value, 0) + 1
        n = len(ids)
        print(f"sweep: {n} jobs, capacity {args.capacity}: {ended}")
        print(f"messages posted:                {traffic['messages']} ({traffic['messages_per_channel'].get(CHANNEL, 0)} in {CHANNEL})")
        print(f"owner mentions:                 {traffic['mentions'].get(USER, 0)}")
        print(f"peak posts per channel per 10s: {traffic['peak_posts_per_channel']}")
        print(f"peak updates of one message/min:{traffic['peak_updates_per_message_per_minute']:>4}")
        print(f"peak chat.update per minute:    {traffic['peak_updates_per_minute']} ({traffic['updates']} in all)")
        print(f"429s answered:                  {sum(traffic['rate_limited'].values())} {traffic['rate_limited']}")
        print(f"time to drain (simulated):      {drained / 60:.1f} min (registration {registered:.1f} s wall; whole run {wall:.0f} s wall)")
        print(f"DynamoDB writes per job:        {world.counter.total_writes / n:.2f} {dict(world.counter.writes)}")
        print(f"DynamoDB reads per job:         {world.counter.total_reads / n:.2f} {dict(world.counter.reads)}")


if __name__ == "__main__":
    main()
