"""The `/train` grammar: text in, typed request or a problem naming the field, out."""

from __future__ import annotations

import pytest

from backend.domain.status import JobStatus
from bot import grammar
from bot.grammar import BadCommand, duration, job_spec, parse, sweep_size, sweep_specs
from tests.bot_fixtures import GOOD_SUBMIT


def test_the_issues_example_parses_into_a_complete_create_training_job_request():
    spec = job_spec(parse(GOOD_SUBMIT).fields)
    request = spec.job_args.to_request("bert-lr3-abc-a1")
    assert spec.name == "bert-lr3"
    assert request["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    assert request["InputDataConfig"][0]["ChannelName"] == "train"
    assert request["HyperParameters"] == {"lr": "3e-5", "epochs": "3"}


@pytest.mark.parametrize("text, seconds", [("1h", 3600), ("90m", 5400), ("3600", 3600), ("1h30m", 5400), ("2d", 172800), ("45s", 45)])
def test_durations_read_hours_minutes_and_plain_seconds(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1h-", "-5", "1.5h", "9" * 30])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(ValueError):
        duration(text)


def test_quoted_values_keep_their_spaces_and_slack_entities_and_smart_quotes_are_undone():
    fields = parse("submit name=x hp.note=\u201ctwo words\u201d hp.cmp='a &lt; b'").fields
    assert fields["hp.note"] == "two words" and fields["hp.cmp"] == "a < b"


def test_input_channels_spot_priority_retries_and_tags_map_to_their_fields():
    spec = job_spec(
        parse(
            GOOD_SUBMIT + " input.val=s3://data-bucket/val spot=true max_wait=2h priority=8 retries=4 tag.team=nlp count=2"
        ).fields
    )
    assert [c.ChannelName for c in spec.job_args.InputDataConfig] == ["train", "val"]
    assert spec.job_args.EnableManagedSpotTraining and spec.job_args.StoppingCondition.MaxWaitTimeInSeconds == 7200
    assert (spec.priority, spec.retry_budget, spec.job_args.instance_count) == (8, 4, 2)
    assert spec.job_args.Tags[0].Key == "team"


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


def test_missing_required_fields_are_all_listed_with_an_example():
    with pytest.raises(BadCommand) as caught:
        job_spec(parse("submit name=x hp.lr=1").fields)
    assert [p.split(" ")[0] for p in caught.value.problems] == ["image", "instance", "output", "role"]


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


def test_a_sweep_makes_one_job_per_combination_with_numbered_names():
    fields = parse(GOOD_SUBMIT.replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5,1e-4").replace("hp.epochs=3", "hp.epochs=2,3")).fields
    specs = sweep_specs(fields, max_size=100)
    assert sweep_size(fields) == 6 and len(specs) == 6
    assert specs[0].name == "bert-lr3-1" and specs[0].hyperparameters == {"lr": "1e-5", "epochs": "2"}
    assert {tuple(s.job_args.HyperParameters.items()) for s in specs} == {
        (("lr", lr), ("epochs", ep)) for lr in ("1e-5", "3e-5", "1e-4") for ep in ("2", "3")
    }


def test_a_sweep_over_the_cap_is_refused_before_anything_is_expanded():
    fields = {**parse(GOOD_SUBMIT).fields, **{f"hp.p{i}": ",".join(map(str, range(10))) for i in range(30)}}
    with pytest.raises(BadCommand, match="the limit is 2,000"):
        sweep_specs(fields, max_size=2000)


def test_a_sweep_without_a_list_is_refused():
    with pytest.raises(BadCommand, match="comma list"):
        sweep_specs(parse(GOOD_SUBMIT).fields, max_size=10)
