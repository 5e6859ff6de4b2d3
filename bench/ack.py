"""Benchmark the bot's warm ack against a bare slack-bolt app's, side by side.

    .venv/bin/python bench/ack.py [--n 120] [--rounds 3] [--profile]

Both apps answer the same signed ``/train submit`` requests (each with its own trigger id and a
``response_url`` on the one Slack stand-in), in-process, through their Lambda handlers: the bot
through the handler template.yaml names, the bare app (one ``/train`` listener that acks and
hands the work to a lazy listener, which answers on ``response_url``) through bolt's
``SlackRequestHandler``. Each ack makes its lazy self-invocation through the same Lambda Invoke
stand-in, which runs the lazy work (the bot's: registering the job in moto's DynamoDB, the
answers to Slack) in a thread of its own, as Lambda runs it in another execution environment.

The two apps alternate, request by request, so the machine's neighbours weigh on both alike; a
request is timed from the event in to the answer out (the ack), and the next one starts when the
lazy work of the last has finished (on Lambda it runs elsewhere: it should not weigh on the
next ack here). Printed: median and p90 per app, and the ratios. ``--profile`` prints where the
bot's ack spends its time instead (cProfile, the same requests).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._offline import offline_aws_env  # noqa: E402

offline_aws_env()

SECRET = "c9f0f895fb98ab9159f51fd0297e236d"  # shaped like a real one (the bot refuses placeholders)
TEAM, USER, CHANNEL = "T0LOCAL", "U0BENCH", "C0BENCH"
BOT, BARE = "trainbot-bot", "bare-bolt"
SUBMIT = (
    "submit name=bert-lr3 image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge input=s3://data-bucket/train output=s3://out-bucket/runs "
    "role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime=1h hp.lr=3e-5 hp.epochs=3"
)
WARMUP = 10


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


def bare_app(api_url: str):
    """slack-bolt's own Lambda lazy-listener example, pointed at the stand-ins."""
    from slack_bolt import App
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler
    from slack_sdk import WebClient

    app = App(
        signing_secret=SECRET,
        client=WebClient(token="xoxb-bench", base_url=api_url),
        token_verification_enabled=False,
        process_before_response=True,
    )

    def ack_submit(ack) -> None:
        ack(response_type="ephemeral", text="Registering…")

    def work(respond) -> None:
        respond(response_type="ephemeral", replace_original=False, text="registered")

    app.command("/train")(ack=ack_submit, lazy=[work])
    return SlackRequestHandler(app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120, help="timed submits per app and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (figures are over all of them)")
    parser.add_argument("--profile", action="store_true", help="profile the bot's acks instead")
    args = parser.parse_args()

    import logging

    logging.disable(logging.WARNING)
    from moto import mock_aws

    from infra.local.standins.lambda_invoke import LambdaStandIn, lambda_context
    from infra.local.standins.slack import SlackStandIn
    from infra.local.standins.slack_signing import lambda_url_event, signed_headers, slash_command_body

    with mock_aws(), SlackStandIn(team_id=TEAM, bot_user_id="U0BOT") as slack, LambdaStandIn() as lam:
        slack.add_channel(CHANNEL, "ml-training")
        from backend.adapters.aws import aws_client
        from infra.template import create_jobs_table

        create_jobs_table(aws_client("dynamodb", region="us-east-1"), "bench-jobs")
        os.environ.update(
            {
                "JOBS_TABLE_NAME": "bench-jobs",
                "SLACK_SIGNING_SECRET": SECRET,
                "SLACK_BOT_TOKEN": "xoxb-bench",
                "SLACK_TEAM_ID": TEAM,
                "SLACK_API_URL": slack.api_url,
                "AWS_ENDPOINT_URL_LAMBDA": lam.url,
            }
        )
        import bot.handler

        bot.handler.reset()
        bare = bare_app(slack.api_url)
        lam.add(BOT, bot.handler.handler)
        lam.add(BARE, bare.handle)
        apps = {BOT: bot.handler.handler, BARE: bare.handle}
        contexts = {name: lambda_context(name) for name in apps}

        def ack(name: str) -> float:
            body = slash_command_body(
                text=SUBMIT,
                user_id=USER,
                team_id=TEAM,
                channel_id=CHANNEL,
                response_url=slack.response_url(CHANNEL, USER),
                trigger_id=f"{uuid.uuid4().hex}",
            )
            event = lambda_url_event(body, signed_headers(SECRET, body))
            started = time.perf_counter()
            response = apps[name](event, contexts[name])
            elapsed = time.perf_counter() - started
            assert response["statusCode"] == 200, response
            lam.wait_idle(60)  # the lazy work, untimed
            return elapsed

        for _ in range(WARMUP):
            for name in apps:
                ack(name)
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.n):
                ack(BOT)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
            print(out.getvalue())
            return
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(args.rounds):
            for _ in range(args.n):
                for name in apps:
                    samples[name].append(ack(name))
        errors = lam.errors()
        assert not errors, errors[0]

    ours, theirs = samples[BOT], samples[BARE]
    print(f"warm ack of a signed /train submit, {len(ours)} per app (wall ms; lazy work through the Lambda stand-in):")
    print(f"  {'':<30}{'median':>9}{'p90':>9}")
    print(f"  {'trainbot (bot.handler)':<30}{percentile(ours, 0.5):9.2f}{percentile(ours, 0.9):9.2f}")
    print(f"  {'bare bolt, ack + lazy':<30}{percentile(theirs, 0.5):9.2f}{percentile(theirs, 0.9):9.2f}")
    print(
        f"  {'ratio':<30}{percentile(ours, 0.5) / percentile(theirs, 0.5):8.2f}x"
        f"{percentile(ours, 0.9) / percentile(theirs, 0.9):8.2f}x   (targets 1.5x, 3x)"
    )


if __name__ == "__main__":
    main()
