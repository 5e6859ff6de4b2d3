"""Job specs (backend.domain.spec): grammar fields in, a validated JobSpec or a problem naming the
field, out. The same for the bot, the CLI and local mode."""

from __future__ import annotations

import pytest

from backend.domain.model import MAX_INSTANCE_COUNT, MAX_JOB_NAME, MAX_PRIORITY, MAX_RETRY_BUDGET
from backend.domain.spec import BadCommand, duration, job_spec, parse_fields, sweep_size, sweep_specs
from tests.bot_fixtures import GOOD_SUBMIT


def fields_of(text: str) -> dict[str, str]:
    """``key=value`` words (no quotes) as fields, the way every entry point hands them over."""
    return parse_fields(text.split()[1:], "usage")


def test_the_issues_example_makes_a_complete_create_training_job_request():
    spec = job_spec(fields_of(GOOD_SUBMIT))
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


def test_input_channels_spot_priority_retries_and_tags_map_to_their_fields():
    spec = job_spec(
        fields_of(GOOD_SUBMIT + " input.val=s3://data-bucket/val spot=true max_wait=2h priority=8 retries=4 tag.team=nlp count=2")
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
    ],
)
def test_each_mistake_is_named_by_its_grammar_name(change, named):
    with pytest.raises(BadCommand) as caught:
        job_spec(fields_of(GOOD_SUBMIT.replace(*change)))
    assert any(named in p for p in caught.value.problems), caught.value.problems
    assert caught.value.usage.startswith("/train submit")


@pytest.mark.parametrize(
    "words, named",
    [
        ("colour=red", "'colour' is not a key"),
        ("max_runtime=1h max_runtime=2h", "max_runtime is given twice"),
        ("lonely", "'lonely' is not key=value"),
    ],
)
def test_malformed_words_are_named_with_the_callers_usage(words, named):
    with pytest.raises(BadCommand) as caught:
        parse_fields(words.split(), "the usage")
    assert any(named in p for p in caught.value.problems) and caught.value.usage == "the usage"


@pytest.mark.parametrize(
    "key, too_many, limit",
    [
        ("count", MAX_INSTANCE_COUNT + 1, MAX_INSTANCE_COUNT),
        ("priority", MAX_PRIORITY + 1, MAX_PRIORITY),
        ("retries", MAX_RETRY_BUDGET + 1, MAX_RETRY_BUDGET),
    ],
)
def test_the_limits_are_the_models_own(key, too_many, limit):
    assert job_spec({**fields_of(GOOD_SUBMIT), key: str(limit)})
    with pytest.raises(BadCommand, match=f"{key}: {too_many} is out of range"):
        job_spec({**fields_of(GOOD_SUBMIT), key: str(too_many)})


def test_a_name_may_be_as_long_as_the_model_allows_and_no_longer():
    assert job_spec({**fields_of(GOOD_SUBMIT), "name": "n" * MAX_JOB_NAME}).name == "n" * MAX_JOB_NAME
    with pytest.raises(BadCommand, match=f"1-{MAX_JOB_NAME} letters"):
        job_spec({**fields_of(GOOD_SUBMIT), "name": "n" * (MAX_JOB_NAME + 1)})


def test_missing_required_fields_are_all_listed_with_an_example():
    with pytest.raises(BadCommand) as caught:
        job_spec({"name": "x", "hp.lr": "1"})
    assert [p.split(" ")[0] for p in caught.value.problems] == ["image", "instance", "output", "role"]


def test_a_sweep_makes_one_job_per_combination_with_numbered_names():
    fields = fields_of(GOOD_SUBMIT.replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5,1e-4").replace("hp.epochs=3", "hp.epochs=2,3"))
    specs = sweep_specs(fields, max_size=100)
    assert sweep_size(fields) == 6 and len(specs) == 6
    assert specs[0].name == "bert-lr3-1" and specs[0].hyperparameters == {"lr": "1e-5", "epochs": "2"}
    assert {tuple(s.job_args.HyperParameters.items()) for s in specs} == {
        (("lr", lr), ("epochs", ep)) for lr in ("1e-5", "3e-5", "1e-4") for ep in ("2", "3")
    }


def test_a_sweep_over_the_cap_is_refused_before_anything_is_expanded():
    fields = {**fields_of(GOOD_SUBMIT), **{f"hp.p{i}": ",".join(map(str, range(10))) for i in range(30)}}
    with pytest.raises(BadCommand, match="the limit is 2,000"):
        sweep_specs(fields, max_size=2000)


def test_a_sweep_without_a_list_is_refused():
    with pytest.raises(BadCommand, match="comma list"):
        sweep_specs(fields_of(GOOD_SUBMIT), max_size=10)
