"""Services: the use cases (submit, launch, monitor, stop, retry, notify). They take ports as
arguments and know neither boto3 nor slack_sdk nor the bot."""
