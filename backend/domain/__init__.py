"""The job domain: model, status machine, retry policy. Pure Python; no I/O, no boto3, no Slack."""
