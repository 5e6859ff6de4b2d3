"""Trainbot on this machine: the stand-ins for AWS, SageMaker and Slack. Never shipped."""
