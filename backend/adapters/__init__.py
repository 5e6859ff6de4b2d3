"""Adapters: the only modules that import boto3 or slack_sdk. Each implements a port of
``backend.ports`` and translates the outside world's vocabulary and errors into the domain's."""
