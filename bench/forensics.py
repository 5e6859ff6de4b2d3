"""What failure forensics cost: CloudWatch Logs calls and time per failed attempt, the stored
tail's size, and the monitor's event handling with and without the tail.

    .venv/bin/python bench/forensics.py [--jobs 60] [--hosts 2]

``jobs`` jobs fail with AlgorithmError (retry budget 0) through tests/harness.py's Stack (moto
for DynamoDB, SNS and CloudWatch Logs; the SageMaker stand-in writing each host's log), once with
the monitor reading tails and once with forensics switched off (the same run otherwise). Printed:
logs calls per failure, the monitor's wall time per SageMaker event (median and p95, all events),
the stored tail's bytes and the job item's size. moto answers in-process, so the times are
Trainbot's own cost plus botocore's, not CloudWatch's latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._offline import offline_aws_env  # noqa: E402

offline_aws_env(POWERTOOLS_METRICS_NAMESPACE="Bench")


def run(jobs: int, hosts: int, *, forensics: bool) -> dict[str, float]:
    import logging

    from moto import mock_aws

    from backend.adapters.dynamo import to_item
    from infra.local.standins.sagemaker import ALGORITHM_ERROR, HP_LOG, HP_OUTCOME
    from tests.harness import Stack, job_request

    logging.getLogger("infra.local.standins.sagemaker").setLevel(logging.ERROR)
    tail = "\n".join([f"step {n} loss=0.{n:04d}" for n in range(40)] + ["RuntimeError: CUDA error: out of memory"])
    with mock_aws():
        stack = Stack(logs=True, duration=600.0, startup=20.0)
        try:
            if not forensics:
                stack.container.monitor._forensics = None
            args = job_request(**{HP_OUTCOME: ALGORITHM_ERROR, HP_LOG: tail})
            args = args.model_copy(update={"ResourceConfig": args.ResourceConfig.model_copy(update={"InstanceCount": hosts})})
            ids = [stack.submit(f"bench-{n}", job_args=args, retry_budget=0).job_id for n in range(jobs)]
            times: list[float] = []
            for _ in range(200):
                stack.clock.advance(30.0)
                stack.launch()
                for event in stack.sagemaker.drain_events():
                    started = time.perf_counter()
                    stack.monitor_handler(event, stack.context)
                    times.append(time.perf_counter() - started)
                if all(job.is_terminal for job in stack.store.get_many(ids)):
                    break
            done = stack.store.get_many(ids)
            assert all(job.status.value == "Failed" for job in done)
            logs = stack.container.forensics._logs
            tail_bytes = [
                len(json.dumps(job.current_attempt.log_tail.model_dump(mode="json")).encode())
                for job in done
                if job.current_attempt.log_tail
            ]
            item_bytes = [len(json.dumps(to_item(job)).encode()) for job in done]
            times.sort()
            return {
                "logs_calls_per_failure": getattr(logs, "calls", 0) / max(1, stack.container.forensics.tails_read),
                "tails_read": float(stack.container.forensics.tails_read),
                "event_ms_median": 1000 * statistics.median(times),
                "event_ms_p95": 1000 * times[int(0.95 * (len(times) - 1))],
                "tail_bytes": statistics.mean(tail_bytes) if tail_bytes else 0.0,
                "item_bytes": statistics.mean(item_bytes),
                "events": float(len(times)),
            }
        finally:
            stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--hosts", type=int, default=2)
    options = parser.parse_args()
    with_tail = run(options.jobs, options.hosts, forensics=True)
    without = run(options.jobs, options.hosts, forensics=False)
    print(f"{options.jobs} jobs failing with AlgorithmError, {options.hosts} hosts each ({int(with_tail['events'])} SageMaker events)")
    print(f"  tails read: {int(with_tail['tails_read'])} (the rest over the 30-a-minute bound say 'not read')")
    print(f"  CloudWatch Logs calls per tail read: {with_tail['logs_calls_per_failure']:.1f} (paced at 5 a second)")
    print(f"  monitor per event, with tails:    median {with_tail['event_ms_median']:.1f} ms, p95 {with_tail['event_ms_p95']:.1f} ms")
    print(f"  monitor per event, without tails: median {without['event_ms_median']:.1f} ms, p95 {without['event_ms_p95']:.1f} ms")
    print(
        f"  stored tail: {with_tail['tail_bytes']:.0f} bytes; job item {with_tail['item_bytes']:.0f} bytes (without a tail {without['item_bytes']:.0f})"
    )


if __name__ == "__main__":
    main()
