"""Fixtures the CLI's integration tests share: the jobs table on moto's server (``aws``) and a
job spec file (``spec``), defined with the CLI tests."""

from tests.integration.test_cli import aws, spec

__all__ = ["aws", "spec"]
