"""Lifecycle benchmark: what one job costs the launcher and the monitor, and what a tick reads.

Runs Trainbot's launcher and monitor services against moto's server (a separate process, so
its CPU is not ours) and the SageMaker stand-in with zero latency and a simulated clock.
Prints:

- launcher throughput: jobs claimed+created per second of the launcher's own CPU time
  (``time.thread_time`` of the thread running it: our code, boto3 and the HTTP client);
- DynamoDB and SageMaker calls per job lifecycle, on the happy path and under the chaos mix;
- items read per launcher tick and per monitor sweep with 50 active jobs, against 1k, 10k and
  50k finished jobs of history (``--quick``: 1k and 10k).

Usage: ``.venv/bin/python bench/lifecycle.py [--jobs 1000] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto_server did not start")


def request(**hp):
    from backend.domain.model import JobArgs

    return JobArgs.model_validate(
        {
            "AlgorithmSpecification": {"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "s3://out-bucket/runs"},
            "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
            "HyperParameters": hp,
        }
    )


class World:
    """One table, one topic, one stand-in, one wired Trainbot."""

    def __init__(self, endpoint: str, name: str, faults=None) -> None:
        from backend.adapters.aws import aws_client
        from backend.bootstrap import build
        from backend.config import Settings
        from infra.local.standins.sagemaker import FakeClock, Faults, SageMakerStandIn
        from infra.template import create_jobs_table, create_topic

        self.clock = FakeClock(start=1_790_000_000.0)
        self.sagemaker = SageMakerStandIn(
            clock=self.clock, default_duration_seconds=90, startup_seconds=15, stop_seconds=10, faults=faults or Faults(), seed=3
        )
        self.sagemaker.start()
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = self.sagemaker.url
        dynamodb = aws_client("dynamodb", region="us-east-1")
        create_jobs_table(dynamodb, name)
        topic = create_topic(aws_client("sns", region="us-east-1"), name)
        settings = Settings.from_env(
            {"JOBS_TABLE_NAME": name, "NOTIFY_TOPIC_ARN": topic, "TRAINBOT_SAGEMAKER_CALLS_PER_SECOND": "1000000"}
        )
        self.container = build(settings, clock=self.clock.now, sleep=self.clock.advance, rng=random.Random(5))
        self.store = self.container.store
        self.launcher = self.container.launcher
        self.monitor = self.container.monitor

    def close(self) -> None:
        self.sagemaker.stop()

    def submit(self, count: int, hp_for=lambda i: {}) -> list[str]:
        from backend.domain.model import Owner, new_job

        owner = Owner(team_id="T1", user_id="UBENCH")
        jobs = [new_job(name=f"bench-{i}", job_args=request(**hp_for(i)), owner=owner, now=self.clock.now(), client_token=f"b/{i}") for i in range(count)]
        return self.store.register_many(jobs, f"bench-{id(self)}")

    def events(self) -> None:
        from backend.adapters.sagemaker_events import parse_state_change
        from backend.domain.model import parse_attempt_name

        for event in self.sagemaker.drain_events():
            status = parse_state_change(event)
            parsed = parse_attempt_name(status.name)
            if parsed:
                self.monitor.observe(*parsed, status)

    def run(self, ids: list[str]) -> dict:
        launched = 0
        launcher_cpu = 0.0
        for tick in range(400):
            self.clock.advance(30)
            start = time.thread_time()
            report = self.launcher.run_tick()
            launcher_cpu += time.thread_time() - start
            launched += report.launched + report.adopted
            self.events()
            if tick % 5 == 4:
                self.monitor.sweep()
            if tick % 10 == 9 and all(j.is_terminal for j in self.store.get_many(ids)):
                break
        self.monitor.sweep()
        return {"launched": launched, "launcher_cpu": launcher_cpu}


def lifecycle(endpoint: str, jobs: int, chaos: bool) -> None:
    from infra.local.standins.sagemaker import Faults

    faults = Faults.chaos_mix() if chaos else None
    world = World(endpoint, f"bench-{'chaos' if chaos else 'happy'}", faults)
    try:
        rng = random.Random(1)
        hp_for = (
            (lambda i: rng.choice([{}, {}, {"trainbot_standin_outcome": "CapacityError", "trainbot_standin_outcome_attempts": "1"}]))
            if chaos
            else (lambda i: {})
        )
        ids = world.submit(jobs, hp_for)
        world.store.metrics.reset()
        result = world.run(ids)
        finished = world.store.get_many(ids)
        dynamo_calls = sum(world.store.metrics.calls.values())
        settle_checks = world.store.metrics.calls["batch_get_item"]  # the benchmark's own "all done?" reads
        sagemaker_calls = sum(world.sagemaker.calls.values())
        label = "chaos mix" if chaos else "happy path"
        print(f"\n== {label}: {jobs} jobs ==")
        print(f"  ended: {sum(j.is_terminal for j in finished)}/{jobs}; completed {sum(j.status.value == 'Completed' for j in finished)}")
        if result["launcher_cpu"] > 0:
            print(f"  launcher throughput: {result['launched'] / result['launcher_cpu']:.0f} jobs claimed+created per CPU-second")
        print(f"  DynamoDB calls per job: {(dynamo_calls - settle_checks) / jobs:.1f}  (by operation: "
              + ", ".join(f"{op} {n / jobs:.2f}" for op, n in sorted(world.store.metrics.calls.items()) if op != "batch_get_item")
              + ")")
        print(f"  SageMaker calls per job: {sagemaker_calls / jobs:.2f}  ("
              + ", ".join(f"{op} {n / jobs:.2f}" for op, n in sorted(world.sagemaker.calls.items())) + ")")
    finally:
        world.close()


def reads_per_tick(endpoint: str, history: int) -> None:
    from backend.adapters.dynamo import to_item
    from backend.domain.model import Owner, new_job
    from backend.domain.status import JobStatus

    world = World(endpoint, f"bench-history-{history}")
    try:
        owner = Owner(team_id="T1", user_id="UHIST")
        args = request()
        batch = []
        client = world.store._client
        for i in range(history):
            job = new_job(name="old", job_args=args, owner=owner, now=world.clock.now(), job_id=f"old-{i:06d}")
            batch.append({"PutRequest": {"Item": to_item(job.model_copy(update={"status": JobStatus.COMPLETED}))}})
            if len(batch) == 25:
                client.batch_write_item(RequestItems={world.store.table_name: batch})
                batch = []
        if batch:
            client.batch_write_item(RequestItems={world.store.table_name: batch})
        world.submit(50, lambda i: {"trainbot_standin_duration": "100000"})
        world.launcher.run_tick()
        world.clock.advance(60)
        world.sagemaker.drain_events()
        world.store.metrics.reset()
        world.launcher.run_tick()
        launcher = world.store.metrics.items_read
        world.store.metrics.reset()
        world.monitor.sweep()
        sweep = world.store.metrics.items_read
        scans = world.store.metrics.calls.get("scan", 0)
        print(f"  history {history:>6}: launcher tick read {launcher} items, monitor sweep read {sweep} items (50 active), scans {scans}")
    finally:
        world.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="history sizes 1k and 10k only")
    args = parser.parse_args()
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                       "POWERTOOLS_LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"})
    moto, endpoint = start_moto()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    os.environ["AWS_ENDPOINT_URL_SNS"] = endpoint
    try:
        lifecycle(endpoint, args.jobs, chaos=False)
        lifecycle(endpoint, args.jobs, chaos=True)
        print("\n== items read per tick vs table history ==")
        for history in ([1_000, 10_000] if args.quick else [1_000, 10_000, 50_000]):
            reads_per_tick(endpoint, history)
    finally:
        moto.terminate()
        try:
            moto.wait(timeout=5)
        except subprocess.TimeoutExpired:
            moto.kill()
            moto.wait()


if __name__ == "__main__":
    main()
