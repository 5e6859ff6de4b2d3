"""Slack as an outbound adapter: the Web API client, credentials, Block Kit rendering and the notifier."""
