"""The `/train` grammar: text in, typed request or a problem naming the field, out. (What the
``key=value`` fields mean is backend.domain.spec's, tested in tests/unit/test_spec.py.)"""

from __future__ import annotations

import pytest

from backend.domain.spec import BadCommand, job_spec
from backend.domain.status import JobStatus
from bot import grammar
from bot.grammar import parse
from tests.bot_fixtures import GOOD_SUBMIT


def test_the_issues_example_parses_into_a_complete_create_training_job_request():
    spec = job_spec(parse(GOOD_SUBMIT).fields)
    request = spec.job_args.to_request("bert-lr3-abc-a1")
    assert spec.name == "bert-lr3"
    assert request["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    assert request["InputDataConfig"][0]["ChannelName"] == "train"
    assert request["HyperParameters"] == {"lr": "3e-5", "epochs": "3"}


def test_quoted_values_keep_their_spaces_and_slack_entities_and_smart_quotes_are_undone():
    fields = parse("submit name=x hp.note=\u201ctwo words\u201d hp.cmp='a &lt; b'").fields
    assert fields["hp.note"] == "two words" and fields["hp.cmp"] == "a < b"


@pytest.mark.parametrize(
    "change, named",
    [
        (("ml.g5.xlarge", "g5.xlarge"), "instance: 'g5.xlarge' is not a SageMaker training instance type (did you mean ml.g5.xlarge?)"),
        (("max_runtime=1h", "max_runtime=soon"), "max_runtime:"),
        (("role=arn:aws:iam::123456789012:role/SageMakerRole", "role=admin"), "role:"),
        (("output=s3://out-bucket/runs", "output=/tmp"), "output:"),
        (("name=bert-lr3", "name=bad/name"), "name:"),
        (("max_runtime=1h", "max_runtime=1h priority=12"), "priority: 12 is out of range"),
        (("max_runtime=1h", "max_runtime=1h spot=true"), "spot training needs max_wait"),
        (("max_runtime=1h", "max_runtime=1h colour=red"), "'colour' is not a key"),
        (("max_runtime=1h", "max_runtime=1h max_runtime=2h"), "max_runtime is given twice"),
        (("max_runtime=1h", "max_runtime=1h lonely"), "'lonely' is not key=value"),
    ],
)
def test_each_mistake_is_named_by_its_grammar_name(change, named):
    with pytest.raises(BadCommand) as caught:
        job_spec(parse(GOOD_SUBMIT.replace(*change)).fields)
    assert any(named in p for p in caught.value.problems), caught.value.problems
    assert caught.value.usage.startswith("/train submit")


def test_an_unclosed_quote_is_a_polite_problem():
    with pytest.raises(BadCommand, match="quote is not closed"):
        parse('submit name="x')


@pytest.mark.parametrize(
    "text, request_",
    [
        ("", grammar.Help()),
        ("help", grammar.Help()),
        ("deploy", grammar.Help(unknown="deploy")),
        ("submit", grammar.OpenSubmitModal()),
        ("status bert-lr3-abc123", grammar.Status("bert-lr3-abc123")),
        ("stop bert-lr3-abc123", grammar.Stop("bert-lr3-abc123")),
        ("retry bert-lr3-abc123", grammar.Retry("bert-lr3-abc123")),
        ("list", grammar.ListJobs("mine", None)),
        ("list all status=failed", grammar.ListJobs("all", JobStatus.FAILED)),
        ("preset", grammar.PresetList()),
        ("preset list", grammar.PresetList()),
        ("preset show nlp", grammar.PresetShow("nlp")),
        ("preset delete nlp", grammar.PresetDelete("nlp")),
        ("preset save nlp instance=ml.g5.xlarge", grammar.PresetSave("nlp", {"instance": "ml.g5.xlarge"})),
    ],
)
def test_every_subcommand_parses_to_its_request(text, request_):
    assert parse(text) == request_


@pytest.mark.parametrize("text", ["status", "status a b", "stop <!channel>", "list status=sleeping", "preset save", "preset save NLP!", "preset save nlp name=x", "preset frob"])
def test_malformed_subcommands_are_refused_with_their_usage(text):
    with pytest.raises(BadCommand) as caught:
        parse(text)
    assert caught.value.usage
