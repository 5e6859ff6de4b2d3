"""Benchmark the bot's ack path and cold start against a bare slack-bolt app.

    .venv/bin/python bench/bot.py [--n 1000]

Ack latency: ``n`` signed `/train submit` requests (each a new trigger id) through the
template's handler, in-process; DynamoDB is moto (the ack of a preset-less submit reads
nothing), the lazy self-invocation goes to the local Lambda Invoke stand-in (a no-op there:
only the ack is timed), as on Lambda where that call is part of the ack. The bare app is
slack-bolt with one `/train` listener that acks, behind the same SlackRequestHandler.

Cold start: a fresh interpreter imports the handler module and everything its first event
loads (the bot's wiring), against one importing slack-bolt and its Lambda adapter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._offline import offline_aws_env  # noqa: E402

offline_aws_env()

SECRET = "c9f0f895fb98ab9159f51fd0297e236d"  # shaped like a real one (the bot refuses placeholders)
SUBMIT = (
    "submit name=bert-lr3 image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge input=s3://data-bucket/train output=s3://out-bucket/runs "
    "role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime=1h hp.lr=3e-5 hp.epochs=3"
)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def _time_acks(handler, n: int) -> list[float]:
    from infra.local.standins.lambda_invoke import lambda_context
    from infra.local.standins.slack_signing import lambda_url_event, signed_headers, slash_command_body

    context = lambda_context("trainbot-bot")
    samples = []
    for i in range(n + 20):
        body = slash_command_body(text=SUBMIT, user_id="U0BENCH", team_id="T0LOCAL", trigger_id=f"{i}.{uuid.uuid4().hex}")
        event = lambda_url_event(body, signed_headers(SECRET, body))
        started = time.perf_counter()
        response = handler(event, context)
        elapsed = time.perf_counter() - started
        assert response["statusCode"] == 200, response
        if i >= 20:  # warm-up
            samples.append(elapsed)
    return samples


def bench_acks(n: int) -> None:
    import logging

    logging.disable(logging.WARNING)
    from moto import mock_aws

    from infra.local.standins.lambda_invoke import LambdaStandIn
    from infra.local.standins.slack import SlackStandIn

    with mock_aws(), SlackStandIn() as slack, LambdaStandIn() as lam:
        from backend.adapters.aws import aws_client
        from infra.template import create_jobs_table

        create_jobs_table(aws_client("dynamodb", region="us-east-1"), "bench-jobs")
        lam.add("trainbot-bot", lambda event, context: None)  # only the ack is timed
        os.environ.update(
            {
                "JOBS_TABLE_NAME": "bench-jobs",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_API_URL": slack.api_url,
                "AWS_ENDPOINT_URL_LAMBDA": lam.url,
            }
        )
        import bot.handler

        bot.handler.reset()
        ours = _time_acks(bot.handler.handler, n)
        lam.wait_idle(60)
        # The same, with the lazy self-invocation skipped: what parsing + validation cost.
        from slack_bolt.lazy_listener import LazyListenerRunner

        class Skip(LazyListenerRunner):
            def start(self, function, request) -> None:
                pass

        bot.handler._wiring().slack_handler.app.listener_runner.lazy_listener_runner = Skip()
        ours_no_invoke = _time_acks(bot.handler.handler, n)

        from slack_bolt import App
        from slack_bolt.adapter.aws_lambda import SlackRequestHandler
        from slack_sdk import WebClient

        # Its one auth.test (on the first request) goes to the stand-in, never to Slack.
        bare = App(
            signing_secret=SECRET,
            client=WebClient(token="xoxb-bench", base_url=slack.api_url),
            token_verification_enabled=False,
            process_before_response=True,
        )

        @bare.command("/train")
        def answer(ack) -> None:
            ack(response_type="ephemeral", text="ok")

        bare_handler = SlackRequestHandler(bare)
        theirs = _time_acks(bare_handler.handle, n)

    (p50, p99), (b50, b99) = _percentiles(ours), _percentiles(theirs)
    (q50, q99) = _percentiles(ours_no_invoke)
    print(f"ack latency over {n} signed submits (in-process):")
    print(f"  trainbot   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   (validation + lazy self-invoke)")
    print(f"  trainbot   p50 {q50:7.2f} ms   p99 {q99:7.2f} ms   (validation only, lazy invoke skipped)")
    print(f"  bare bolt  p50 {b50:7.2f} ms   p99 {b99:7.2f} ms")
    print(f"  ratio      p50 {p50 / b50:7.2f} x   p99 {p99 / b99:7.2f} x   (Slack allows 3000 ms)")
    print(f"  mean trainbot {statistics.mean(ours) * 1000:.2f} ms")


def _import_seconds(code: str, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, float(out.stdout.strip().splitlines()[-1]))
    return best


def bench_imports() -> None:
    handler_only = _import_seconds("import bot.handler")
    ours = _import_seconds(
        "import bot.handler; import slack_bolt.adapter.aws_lambda; import backend.bootstrap; import bot.app"
    )
    bare = _import_seconds("import slack_bolt; import slack_bolt.adapter.aws_lambda")
    print("cold-start import time (best of 5 fresh interpreters):")
    print(f"  bot.handler module           {handler_only * 1000:7.1f} ms   (wiring deferred to the first event)")
    print(f"  trainbot, all the first event loads {ours * 1000:7.1f} ms")
    print(f"  bare slack-bolt + adapter     {bare * 1000:7.1f} ms")
    print(f"  ratio                          {ours / bare:7.2f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    bench_acks(args.n)
    bench_imports()


if __name__ == "__main__":
    main()
