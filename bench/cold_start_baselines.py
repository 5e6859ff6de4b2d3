"""The bare baselines of bench/cold_start.py, as Lambda handlers. Copied next to a built
function's artifact (and compiled like it) and run by the same isolated python3.13, so a ratio
compares Trainbot's code with the least any app doing the same job could load.

- ``bolt_ack``: a bare slack-bolt ``App`` behind its ``SlackRequestHandler``; its one ``/train``
  listener acks. The signing secret and token come from the environment (no Secrets Manager).
- ``bolt_lazy``: the same, whose listener acks and hands the work to a lazy listener (bolt then
  invokes the function itself through boto3's Lambda client, as the bot's submit does).
- ``boto3_call``: one boto3 DynamoDB client and its first call (a GetItem on the jobs table).
"""

import os

_handlers: dict = {}


def _bolt(lazy: bool):
    from slack_bolt import App
    from slack_bolt.adapter.aws_lambda import SlackRequestHandler
    from slack_sdk import WebClient

    app = App(
        signing_secret=os.environ["BASELINE_SIGNING_SECRET"],
        client=WebClient(token=os.environ["BASELINE_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"]),
        token_verification_enabled=False,
        process_before_response=True,
    )

    def ack_only(ack):
        ack(response_type="ephemeral", text="ok")

    def work(body):
        pass

    if lazy:
        app.command("/train")(ack=ack_only, lazy=[work])
    else:
        app.command("/train")(ack_only)
    return SlackRequestHandler(app)


def bolt_ack(event, context):
    if "ack" not in _handlers:
        _handlers["ack"] = _bolt(lazy=False)
    return _handlers["ack"].handle(event, context)


def bolt_lazy(event, context):
    if "lazy" not in _handlers:
        _handlers["lazy"] = _bolt(lazy=True)
    return _handlers["lazy"].handle(event, context)


def boto3_call(event, context):
    import boto3

    client = boto3.client("dynamodb")
    found = client.get_item(TableName=os.environ["JOBS_TABLE_NAME"], Key={"JobId": {"S": "baseline"}})
    return {"found": "Item" in found}
