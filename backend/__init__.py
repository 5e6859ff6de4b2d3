"""Trainbot's backend: the job domain, the services that move jobs through their lifecycle,
and the thin adapters over AWS (boto3) and Slack (slack_sdk) that those services are given."""
