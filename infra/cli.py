"""The `trainbot` command. For now: `trainbot local` walks one job through the store on an
in-process AWS stand-in (moto), so the README's run command works on a fresh machine."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta


def _walk() -> int:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    from moto import mock_aws

    from backend.adapters.aws import aws_client
    from backend.adapters.dynamo_store import DynamoJobStore
    from backend.domain.model import JobArgs, Owner, new_job
    from backend.domain.status import JobStatus
    from backend.domain.times import utcnow
    from infra.template import create_jobs_table

    with mock_aws():
        client = aws_client("dynamodb", region="us-east-1")
        create_jobs_table(client, "trainbot-local-jobs")
        store = DynamoJobStore(client, "trainbot-local-jobs")
        now = utcnow()
        args = JobArgs.model_validate(
            {
                "AlgorithmSpecification": {"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"},
                "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
                "OutputDataConfig": {"S3OutputPath": "s3://out-bucket/runs"},
                "ResourceConfig": {"InstanceType": "ml.g5.xlarge"},
            }
        )
        job = store.register(new_job(name="bert-lr3", job_args=args, owner=Owner(team_id="T0", user_id="U0"), now=now)).job
        print(f"registered {job.job_id} ({job.status})")
        for step, status in enumerate([JobStatus.LAUNCHED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED], start=1):
            job = store.transition(job, status, at=now + timedelta(seconds=step), reason="walk").job
            print(f"  -> {job.status} (version {job.version})")
        print(f"history: {' -> '.join(h.to_status for h in store.get(job.job_id).history)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trainbot", description="Trainbot: chat-ops for SageMaker training.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("local", help="run Trainbot locally")
    parsed = parser.parse_args(argv)
    if parsed.command == "local":
        return _walk()
    return 2


if __name__ == "__main__":
    sys.exit(main())
