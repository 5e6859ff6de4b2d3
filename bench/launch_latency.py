"""Start-on-submit benchmark: how long from `/train submit` to CreateTrainingJob.

    .venv/bin/python bench/launch_latency.py [--jobs 60] [--spread 150] [--baseline]

Runs the whole local Trainbot (``infra.local.LocalStack``: moto's server, the SageMaker, Slack
and Lambda stand-ins, the functions `template.yaml` declares) with the launcher's schedule at
the rate the template gives it (``rate(1 minute)``: 60 s between ticks, not local mode's 2 s).
Jobs are submitted as a user would, as signed `/train submit` requests to the bot's Function
URL, at random moments over ``--spread`` seconds (some alone, some in bursts of up to 10 at
once, so some land just after a tick), after one unmeasured submission and one scheduled
launcher run (on AWS both functions are warm: the schedule runs the launcher every minute). For each, the latency is the SageMaker stand-in's
``CreationTime`` of ``<JobId>-a1`` minus the moment the request was sent (one machine, one
clock). Prints the median, p90, p99 and max, and how many launcher runs there were.

``--baseline`` turns start-on-submit off (no ``TRAINBOT_LAUNCHER_FUNCTION``): what the schedule
alone gives.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUBMIT = (
    "submit name={name} image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest instance=ml.g5.xlarge "
    "output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole"
)


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _schedule_rate() -> float:
    from infra.local.functions import rate_seconds
    from infra.template import load_template

    events = load_template()["Resources"]["LauncherFunction"]["Properties"]["Events"]
    rate = rate_seconds(events["EveryMinute"]["Properties"]["Schedule"])
    assert rate is not None
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--spread", type=float, default=150.0, help="seconds over which jobs are submitted")
    parser.add_argument("--baseline", action="store_true", help="no start on submit: the schedule alone")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    logging.disable(logging.ERROR)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    from backend.adapters.aws import aws_client
    from infra.local import CHANNEL_ID, STACK_NAME, TEAM_ID, LocalOptions, LocalStack
    from infra.local.functions import scheduled_event
    from infra.local.standins.slack_signing import signed_headers, slash_command_body

    rate = _schedule_rate()
    options = LocalOptions(
        port=0, chaos=0.0, launcher_every=rate, monitor_every=60.0, run_seconds=3600.0, seed=args.seed,
        capacity={"ml.g5.xlarge": 10 * args.jobs}, log_transitions=False, write_connection_file=False,
    )
    rng = random.Random(args.seed)
    # Submission moments: bursts of 1..10 jobs at random points of the spread.
    moments: list[float] = []
    while len(moments) < args.jobs:
        at = rng.uniform(0, args.spread)
        moments.extend([at] * min(args.jobs - len(moments), rng.choice([1, 1, 1, 2, 5, 10])))
    moments.sort()

    with LocalStack(options) as stack:
        if args.baseline:
            stack._set_env({"TRAINBOT_LAUNCHER_FUNCTION": ""})
            stack._reset_wiring()
        sent: dict[str, float] = {}
        lock = threading.Lock()

        def submit(i: int) -> None:
            name, user = (f"lat-{i}" if i >= 0 else "warm-up"), f"U0USER{i % 7}"
            body = slash_command_body(
                text=SUBMIT.format(name=name), user_id=user, team_id=TEAM_ID, channel_id=CHANNEL_ID,
                response_url=stack.slack.response_url(CHANNEL_ID, user),
            )
            request = urllib.request.Request(stack.bot.url, data=body.encode(), headers=signed_headers(stack.signing_secret, body))
            with lock:
                sent[name] = time.time()
            with urllib.request.urlopen(request, timeout=60) as response:
                assert response.status == 200

        print(f"launcher schedule: every {rate:g} s ({'schedule only' if args.baseline else 'start on submit + schedule'})")
        # Warm, as on AWS, where the schedule runs the launcher every minute and the bot answers
        # all day: one unmeasured submission and one scheduled launcher run before measuring.
        submit(-1)
        stack.driver.functions["LauncherFunction"].invoke(scheduled_event(f"{STACK_NAME}-launcher-tick"))
        stack.lam.wait_idle(timeout=60)
        sent.clear()
        started = time.monotonic()
        threads = []
        for i, at in enumerate(moments):
            time.sleep(max(0.0, started + at - time.monotonic()))
            thread = threading.Thread(target=submit, args=(i,))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()

        sagemaker = aws_client("sagemaker", region="us-east-1")
        latencies: dict[str, float] = {}
        registered: dict[str, float] = {}  # sent -> the job's CreatedAt (bot ack, lazy listener, register)
        deadline = time.monotonic() + rate + 60
        while len(latencies) < len(sent) and time.monotonic() < deadline:
            jobs = [j for j in stack.store.active_jobs() if j.name in sent and j.name not in latencies]
            for job in jobs:
                created = sagemaker.describe_training_job(TrainingJobName=job.attempts[0].name)["CreationTime"]
                latencies[job.name] = created.timestamp() - sent[job.name]
                registered[job.name] = job.created_at.timestamp() - sent[job.name]
            time.sleep(0.5)
        runs = stack.driver.functions["LauncherFunction"].invocations
        stack.lam.wait_idle(timeout=60)

    ordered = sorted(latencies.values())
    print(f"jobs submitted {len(sent)}, reached CreateTrainingJob {len(ordered)}, launcher runs {runs}")
    if ordered:
        print(
            f"submit -> CreateTrainingJob: median {statistics.median(ordered):.2f} s, p90 {_percentile(ordered, 0.9):.2f} s, "
            f"p99 {_percentile(ordered, 0.99):.2f} s, max {ordered[-1]:.2f} s"
        )
        parts = sorted(registered.values())
        print(
            f"  of which submit -> registered (ack, lazy listener, write): median {statistics.median(parts):.2f} s, "
            f"p99 {_percentile(parts, 0.99):.2f} s"
        )


if __name__ == "__main__":
    main()
