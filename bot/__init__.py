"""The Slack bot: the `/train` grammar, Block Kit rendering, bolt listeners, the Slack notifier
and the Lambda handler. Nothing in ``backend`` imports this package except the composition
root's Slack notifier hook."""
