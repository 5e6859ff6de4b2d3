"""What the cost guard costs in DynamoDB calls: a happy-path job's writes with budgets off and
on, and the reads a submission's budget check makes (moto + the SageMaker stand-in, through the
template's handlers; prints figures, asserts nothing).

    .venv/bin/python -m bench.cost_guard [--jobs 20]
"""

from __future__ import annotations

import argparse
from collections import Counter

WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
READS = ("get_item", "batch_get_item", "query", "scan")


def run(env: dict[str, str], jobs: int) -> tuple[Counter[str], Counter[str]]:
    """DynamoDB calls of ``jobs`` submissions (through the submit use case), then of running
    them to the end."""
    from moto import mock_aws

    from tests.harness import ALICE, Stack

    with mock_aws():
        stack = Stack(env=env)
        try:
            calls = stack.store.metrics.calls
            start = Counter(calls)
            ids = []
            for i in range(jobs):
                fields = {
                    "name": f"bench{i}", "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
                    "instance": "ml.g5.xlarge", "output": "s3://out-bucket/runs",
                    "role": "arn:aws:iam::123456789012:role/SageMakerRole", "max_runtime": "1h",
                }
                ids.append(stack.container.submissions.submit(fields, ALICE, token=f"bench-{i}").job.job_id)
            submitted = Counter(calls)
            stack.run_until_settled(ids)
            for _ in range(12):  # let the outbox drain (quiet changes are told after 5 minutes)
                stack.tick(60, sweep=True)
            done = Counter(calls)
            return submitted - start, done - submitted
        finally:
            stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    import tests.conftest  # noqa: F401  (fake credentials, no real endpoint)

    for label, env in (
        ("budgets off", {}),
        ("budgets on ", {"TRAINBOT_TEAM_BUDGETS": "*=100000", "TRAINBOT_USER_TEAMS": "UALICE=nlp"}),
    ):
        submit, lifecycle = run(env, args.jobs)
        n = args.jobs
        print(
            f"{label}: submit {sum(submit[o] for o in WRITES) / n:.2f} writes + {sum(submit[o] for o in READS) / n:.2f} reads per job"
            f" ({dict(submit)}); lifecycle {sum(lifecycle[o] for o in WRITES) / n:.2f} writes per job"
            f" (update_item {lifecycle['update_item'] / n:.2f}); scans {submit['scan'] + lifecycle['scan']}"
        )


if __name__ == "__main__":
    main()
