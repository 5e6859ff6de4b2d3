"""Every `trainbot` subcommand against DynamoDB and SNS (moto's server over HTTP, reached
through boto3's AWS_ENDPOINT_URL_* as a deployed stack would be): specs good and bad, who may
stop and retry, and the exit codes scripts rely on."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator

import pytest

from backend.adapters.aws import aws_client
from backend.adapters.dynamo import DynamoJobStore
from backend.domain.model import Owner
from backend.domain.status import JobStatus
from backend.entrypoints.cli import main
from backend.services.presets import PresetBook
from infra.local.standins.aws import MotoServer
from infra.template import create_jobs_table, create_topic

TABLE = "trainbot-cli-jobs"
GOOD = """\
name: cli-bert
image: 123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest
instance: ml.g5.xlarge
input: s3://data-bucket/train
output: s3://out-bucket/runs
role: arn:aws:iam::123456789012:role/SageMakerRole
max_runtime: 1h
retries: 3
hp: {lr: 3e-5, epochs: 3}
"""


@pytest.fixture
def aws(monkeypatch) -> Iterator[DynamoJobStore]:
    with MotoServer() as server:
        for name, value in server.endpoint_env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TRAINBOT_ADMIN_USERS", "boss")
        monkeypatch.setenv("TRAINBOT_SWEEP_CONFIRM_SIZE", "10")
        monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
        client = aws_client("dynamodb", region="us-east-1")
        create_jobs_table(client, TABLE)
        monkeypatch.setenv("JOBS_TABLE_NAME", TABLE)
        monkeypatch.setenv("NOTIFY_TOPIC_ARN", create_topic(aws_client("sns", region="us-east-1")))
        yield DynamoJobStore(client, TABLE)


def cli(*argv: str, user: str = "alice") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--user", user, *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def spec(tmp_path):
    def write(text: str = GOOD, name: str = "job.yaml") -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def _mine(store, user="alice"):
    return store.jobs_of_owner(Owner(team_id="cli", user_id=user), limit=100).jobs


def test_submit_a_spec_registers_the_job_as_the_bot_would(aws, spec):
    code, out, err = cli("submit", "--spec", spec(), "--json")

    assert code == 0, err
    answer = json.loads(out)
    job = aws.get(answer["job_id"])
    assert job.status is JobStatus.NEW and job.name == "cli-bert" and job.retry_budget == 3
    assert job.job_args.HyperParameters == {"lr": "3e-5", "epochs": "3"}  # as typed
    assert job.owner == Owner(team_id="cli", user_id="alice")


def test_flags_and_words_override_the_spec(aws, spec):
    code, _, err = cli("submit", "--spec", spec(), "instance=ml.p4d.24xlarge", "--name", "cli-other", "--hp", "lr=1e-4")
    assert code == 0, err
    job = _mine(aws)[0]
    assert (job.name, job.job_args.instance_type, job.job_args.HyperParameters["lr"]) == ("cli-other", "ml.p4d.24xlarge", "1e-4")


def test_the_same_idempotency_key_registers_once(aws, spec):
    assert cli("submit", "--spec", spec(), "--idempotency-key", "k1")[0] == 0
    code, out, _ = cli("submit", "--spec", spec(), "--idempotency-key", "k1")
    assert code == 0 and "already registered" in out
    assert len(_mine(aws)) == 1


def test_a_preset_is_merged_as_in_the_bot(aws, spec):
    PresetBook(aws, is_admin=lambda _u: False).save(
        "nlp",
        {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/nlp:1", "role": "arn:aws:iam::123456789012:role/SageMakerRole",
         "output": "s3://out-bucket/nlp", "instance": "ml.g5.xlarge"},
        "alice",
    )
    code, _, err = cli("submit", "preset=nlp", "name=from-preset")
    assert code == 0, err
    assert _mine(aws)[0].job_args.AlgorithmSpecification.TrainingImage.endswith("/nlp:1")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GOOD.replace("ml.g5.xlarge", "g5.xlarge"), "did you mean ml.g5.xlarge"),
        (GOOD.replace("role: arn:aws:iam::123456789012:role/SageMakerRole\n", ""), "role is missing"),
        (GOOD.replace("max_runtime: 1h", "max_runtime: forever"), "max_runtime"),
        (GOOD + "colour: blue\n", "'colour' is not a spec key"),
        ("name: [unclosed\n", "not valid YAML"),
        (GOOD.replace("lr: 3e-5", "lr: [1, 2]"), "trainbot sweep"),
    ],
)
def test_a_bad_spec_exits_2_names_the_field_and_writes_nothing(aws, spec, text, words):
    code, _, err = cli("submit", "--spec", spec(text))
    assert code == 2
    assert words in err
    assert _mine(aws) == []


def test_a_missing_spec_file_exits_2(aws):
    code, _, err = cli("submit", "--spec", "/nonexistent/job.yaml")
    assert code == 2 and "cannot read" in err


def test_a_large_sweep_shows_progress_and_registers_every_combination(aws, spec, capsys):
    code, out, err = cli("sweep", "--spec", spec(), "--hp", "lr=1,2,3,4,5,6,7,8,9,10", "--hp", "batch=8,16,32,64,128,256", "--yes")

    assert code == 0, err
    assert "registered sweep" in out and "60 jobs" in out
    assert "60/60" in capsys.readouterr().err  # the progress bar (stderr)
    jobs = _mine(aws)
    assert len(jobs) == 60 and len({j.sweep_id for j in jobs}) == 1
    assert {j.job_args.HyperParameters["batch"] for j in jobs} == {"8", "16", "32", "64", "128", "256"}


def test_a_sweep_over_the_confirmation_size_needs_yes_when_nobody_can_answer(aws, spec, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = cli("sweep", "--spec", spec(), "--hp", "lr=1,2,3,4,5,6,7,8,9,10,11")
    assert code == 2 and "--yes" in err
    assert _mine(aws) == []


def test_a_sweep_without_a_list_exits_2(aws, spec):
    code, _, err = cli("sweep", "--spec", spec())
    assert code == 2 and "comma list" in err


def test_status_shows_the_job_and_an_unknown_id_exits_3(aws, spec):
    job_id = json.loads(cli("submit", "--spec", spec(), "--json")[1])["job_id"]

    code, out, _ = cli("status", job_id)
    assert code == 0 and job_id in out and "New" in out
    code, out, _ = cli("status", job_id, "--json")
    assert json.loads(out)["JobStatus"] == "New"
    assert cli("status", "nope-000000")[0] == 3
    assert cli("status", "not a job id!")[0] == 2


def test_list_shows_mine_or_everyones_with_a_status_filter(aws, spec):
    cli("submit", "--spec", spec(), user="alice")
    cli("submit", "--spec", spec(), "--name", "bobs", user="bob")

    code, out, _ = cli("list", "--json")
    assert code == 0 and [j["name"] for j in json.loads(out)] == ["cli-bert"]
    code, out, _ = cli("list", "--all", "--json")
    assert sorted(j["name"] for j in json.loads(out)) == ["bobs", "cli-bert"]
    code, out, _ = cli("list", "--all", "--status", "Failed")
    assert code == 0 and "no jobs" in out
    assert cli("list", "--status", "Sleeping")[0] == 2


def test_stop_and_retry_follow_ownership_and_the_status_machine(aws, spec):
    job_id = json.loads(cli("submit", "--spec", spec(), "--json")[1])["job_id"]

    code, _, err = cli("stop", job_id, user="mallory")
    assert code == 4 and "not allowed" in err
    assert cli("retry", job_id)[0] == 4  # New: nothing to retry
    code, out, _ = cli("stop", job_id)
    assert code == 0 and "Stopped" in out
    assert cli("stop", job_id)[0] == 4  # already stopped
    code, out, _ = cli("retry", job_id, user="boss")  # an admin may retry anyone's job
    assert code == 0 and "Retrying" in out
    assert aws.get(job_id).status is JobStatus.RETRYING
    assert cli("stop", "nope-000000")[0] == 3
    assert cli("retry", "nope-000000")[0] == 3


def test_an_unreachable_aws_exits_5(aws, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{closed}")
    code, _, err = cli("list")
    assert code == 5 and "AWS unavailable" in err


def test_a_table_that_does_not_exist_exits_5(aws):
    code, _, err = cli("--table", "no-such-table", "list")
    assert code == 5 and "ResourceNotFound" in err


def test_submit_and_sweep_both_carry_the_deployments_job_id_prefix(aws, spec, monkeypatch):
    # IAM and the event rule only cover `training-job/<prefix>*`: an unprefixed CLI job would be
    # refused or never watched on AWS.
    monkeypatch.setenv("TRAINBOT_JOB_ID_PREFIX", "tb-")
    code, out, err = cli("submit", "--spec", spec(), "--json")
    assert code == 0, err
    assert json.loads(out)["job_id"].startswith("tb-cli-bert-")

    code, out, err = cli("sweep", "--spec", spec(), "--hp", "lr=1e-5,3e-5", "--json")
    assert code == 0, err
    ids = json.loads(out)["jobs"]
    assert len(ids) == 2 and all(job_id.startswith("tb-cli-bert-") for job_id in ids), ids
    assert {j.job_id for j in _mine(aws)} >= set(ids)


def test_an_instance_fallback_list_is_taken_as_a_flag_or_a_yaml_list_and_refused_when_it_cannot_fit(aws, spec):
    code, _, err = cli("submit", "--spec", spec(), "--instance", "ml.p5.48xlarge,ml.p4d.24xlarge", "--name", "cli-flag")
    assert code == 0, err
    listed = spec(GOOD.replace("instance: ml.g5.xlarge", "instance: [ml.p5.48xlarge, ml.p4d.24xlarge]").replace("cli-bert", "cli-yaml"), "list.yaml")
    code, _, err = cli("submit", "--spec", listed)
    assert code == 0, err
    jobs = {job.name: job for job in _mine(aws)}
    assert {name: job.instance_choices for name, job in jobs.items()} == {
        "cli-flag": ["ml.p5.48xlarge", "ml.p4d.24xlarge"],
        "cli-yaml": ["ml.p5.48xlarge", "ml.p4d.24xlarge"],
    }
    code, out, _ = cli("status", jobs["cli-flag"].job_id)
    assert code == 0 and "ml.p5.48xlarge x 1 (of ml.p5.48xlarge,ml.p4d.24xlarge)" in out

    code, _, err = cli("submit", "--spec", spec(), "--instance", "ml.p5.48xlarge,ml.trn1.32xlarge")
    assert code == 2 and "cannot run the same training image" in err


def test_the_cli_is_plain_text_it_names_a_slack_member_by_id_never_as_slack_markup(aws, spec):
    job_id = json.loads(cli("submit", "--spec", spec(), "--json", user="U0ALICE")[1])["job_id"]

    code, _, err = cli("stop", job_id, user="U0MALLORY")
    assert code == 4 and "only U0ALICE (the owner) or an admin" in err and "<@" not in err
    assert cli("stop", job_id, user="U0ALICE")[0] == 0
    code, out, _ = cli("status", job_id)
    assert code == 0 and "stopped by U0ALICE" in out and "<@" not in out
    # --json is data: the history's reason as stored.
    stored = json.loads(cli("status", job_id, "--json")[1])
    assert "stopped by <@U0ALICE>" in json.dumps(stored)
