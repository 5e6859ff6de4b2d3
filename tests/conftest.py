"""Shared fixtures. AWS is never reached: every test that talks to AWS does so through moto
(in-process ``mock_aws`` or moto's HTTP server) or the SageMaker stand-in."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

# Before anything creates a boto3 client: fake credentials, a fixed region, and no way to
# reach a real endpoint by accident (an unset endpoint would be AWS itself).
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "TrainbotTests",
        "POWERTOOLS_SERVICE_NAME": "trainbot",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # Keep test output readable; tests that check logs or metrics turn them back on.
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
)
for _name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
    del os.environ[_name]

from backend.domain.model import JobArgs, Owner, new_job  # noqa: E402

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def job_args(**overrides) -> JobArgs:
    """A valid CreateTrainingJob request; keyword overrides replace whole top-level parts."""
    base = {
        "AlgorithmSpecification": {"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"},
        "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://data-bucket/train"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://out-bucket/runs"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "HyperParameters": {"lr": "3e-5"},
    }
    base.update(overrides)
    return JobArgs.model_validate(base)


def make_job(name: str = "bert", *, user: str = "U1", team: str = "T1", now: datetime = T0, **kwargs):
    return new_job(name=name, job_args=kwargs.pop("job_args", None) or job_args(), owner=Owner(team_id=team, user_id=user), now=now, **kwargs)


@pytest.fixture
def moto_aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def dynamodb(moto_aws):
    from backend.adapters.aws import aws_client

    return aws_client("dynamodb", region="us-east-1")


@pytest.fixture
def jobs_table(dynamodb) -> str:
    from infra.template import create_jobs_table

    name = f"trainbot-jobs-{uuid.uuid4().hex[:8]}"
    create_jobs_table(dynamodb, name)
    return name


@pytest.fixture
def store(dynamodb, jobs_table):
    from backend.adapters.dynamo import DynamoJobStore

    return DynamoJobStore(dynamodb, jobs_table, sleep=lambda _s: None)


def _speed_up_moto_item_size_check() -> None:
    """moto re-measures a whole DynamoDB item for every attribute it sets (quadratic in the
    attribute count), which makes seeding tens of thousands of jobs take minutes. Keep the
    very same 400 KB limit, measured once per attribute."""
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.utilities import bytesize

    def attribute_size(key: str, value) -> int:
        return bytesize(key) + (value.size() if type(value) is dynamo_type.DynamoType else bytesize(str(value)))

    def setitem(self, key, value):
        sizes = self.__dict__.setdefault("_sizes", {})
        for existing in dict.keys(self):
            if existing not in sizes:
                sizes[existing] = attribute_size(existing, dict.__getitem__(self, existing))
        for gone in set(sizes) - set(dict.keys(self)):
            del sizes[gone]
        new = attribute_size(key, value)
        if sum(sizes.values()) - sizes.get(key, 0) + new > 405000:
            raise ItemSizeTooLarge
        dict.__setitem__(self, key, value)
        sizes[key] = new

    dynamo_type.LimitedSizeDict.__setitem__ = setitem


_speed_up_moto_item_size_check()


def _make_in_process_moto_atomic() -> None:
    """Real DynamoDB applies each request atomically; in-process moto runs concurrent requests
    from several threads interleaved, so two conditional puts can both pass their check. One
    lock around moto's request processing restores per-request atomicity, which the
    concurrency tests (20 racing claimers, concurrent launchers) rely on, as production does."""
    import threading

    from moto.core import botocore_stubber

    lock = threading.RLock()
    original = botocore_stubber.BotocoreStubber.process_request

    def process_request(self, request):
        with lock:
            return original(self, request)

    botocore_stubber.BotocoreStubber.process_request = process_request


_make_in_process_moto_atomic()

# moto's DynamoDB answers are written as JSON directly (same bytes; see the module).
from infra.local.standins import moto_fast  # noqa: E402

moto_fast.install()


def _shorten_botocore_throttling_backoff() -> None:
    """botocore's standard retries wait rand(0, 1) x 1 s x 2^i after a throttling error (50 ms
    scale for any other error). The tests throttle on purpose (scripted and chaos faults in
    the stand-ins and moto), and those waits were seconds of the suite spent asleep: here a
    throttling error backs off on a 20 ms scale instead. Every retry is still made, jittered and
    exponential, up to the clients' own max_attempts (backend.adapters.aws); only the pause
    between them is shorter. Subprocesses (`trainbot local` in the e2e tests) keep botocore's."""
    from botocore.retries.standard import ExponentialBackoff

    ExponentialBackoff._DEFAULT_BACKOFF_CONFIG = {**ExponentialBackoff._DEFAULT_BACKOFF_CONFIG, "throttling_base_scale": 0.02}


_shorten_botocore_throttling_backoff()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The artifact sizes tests/artifact measured in this run (its build writes them; with
    xdist the workers' own output is not shown)."""
    from pathlib import Path

    sizes = Path(__file__).resolve().parents[1] / ".aws-sam" / "artifacts" / "sizes.txt"
    started = getattr(config, "_trainbot_started", None)
    if sizes.exists() and started is not None and sizes.stat().st_mtime >= started:
        terminalreporter.write_sep("-", "Lambda artifacts (sam build), unzipped")
        terminalreporter.write(sizes.read_text(encoding="utf-8"))


def pytest_configure(config):
    import time

    config._trainbot_started = time.time()


def pytest_collection_modifyitems(config, items):
    """Mutation testing (bench/mutation.py): while mutmut runs one mutant, keep only the tests
    that judge its group (TRAINBOT_MUTATION_JUDGES, node-id prefixes; a "-" before one drops
    what it prefixes), so the moto tests that judge the DynamoDB store do not also run for every
    mutant of the domain. Inert otherwise."""
    judges = os.environ.get("TRAINBOT_MUTATION_JUDGES", "").split()
    if not judges or "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    keep = tuple(j for j in judges if not j.startswith("-"))
    drop = tuple(j[1:] for j in judges if j.startswith("-"))  # "-<prefix>": not a judge after all

    def judged(item) -> bool:
        return item.nodeid.startswith(keep) and not item.nodeid.startswith(drop)

    dropped = [item for item in items if not judged(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if judged(item)]
