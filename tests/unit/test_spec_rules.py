"""The spec grammar's values and sweeps at their edges, with the exact problem each mistake
reports and the usage it shows: booleans, whole numbers and their ranges, shortened echoes,
sweep sizes at the limit, duplicate or empty list values, and what every sweep job inherits."""

from __future__ import annotations

import pytest

from backend.domain.spec import (
    SUBMIT_USAGE,
    SWEEP_USAGE,
    BadCommand,
    boolean,
    duration,
    is_known_key,
    job_spec,
    parse_fields,
    shorten,
    sweep_specs,
    whole_number,
)

BASE = {
    "name": "grid",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.g5.xlarge",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
}


def _refusal(call) -> BadCommand:
    with pytest.raises(BadCommand) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("word", ["true", "yes", "1", "on", "TRUE", " Yes ", "On"])
def test_these_words_are_true(word):
    assert boolean(word) is True


@pytest.mark.parametrize("word", ["false", "no", "0", "off", "FALSE", " No ", "OFF"])
def test_these_words_are_false(word):
    assert boolean(word) is False


def test_any_other_word_is_neither_and_is_echoed_back():
    with pytest.raises(ValueError) as caught:
        boolean("maybe")
    assert str(caught.value) == "'maybe' is not true or false"


def test_long_echoes_are_cut_to_sixty_characters_with_an_ellipsis():
    assert shorten("x" * 60) == "x" * 60
    assert shorten("x" * 61) == "x" * 59 + "…"
    assert shorten("abcdef", limit=4) == "abc…"


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("100", 100), (" 7 ", 7), ("000042", 42)])
def test_whole_numbers_within_the_range_are_read(text, number):
    assert whole_number(text, 1, 100, "count is 1 to 100") == number


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "0 is out of range; count is 1 to 100"),
        ("101", "101 is out of range; count is 1 to 100"),
        ("two", "'two' is not a whole number; count is 1 to 100"),
        ("-1", "'-1' is not a whole number; count is 1 to 100"),
        ("1234567", "'1234567' is not a whole number; count is 1 to 100"),
        ("1.5", "'1.5' is not a whole number; count is 1 to 100"),
    ],
)
def test_other_numbers_are_refused_saying_the_range(text, message):
    with pytest.raises(ValueError) as caught:
        whole_number(text, 1, 100, "count is 1 to 100")
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("key", "known"),
    [("hp.lr", True), ("hp.", False), ("hp.a b", False), ("input.val", True), ("tag.team name", True), ("tag.", False), ("nope", False)],
)
def test_prefixed_keys_need_a_name_after_the_prefix(key, known):
    assert is_known_key(key) is known


def test_malformed_words_are_all_reported_with_the_callers_usage():
    refused = _refusal(lambda: parse_fields(["name", "bogus=1", "name=a", "name=b"], "the usage"))
    assert refused.usage == "the usage"
    assert refused.problems[0] == "'name' is not key=value"
    assert refused.problems[1].startswith("'bogus' is not a key; keys are name, preset, image,")
    assert refused.problems[2] == "name is given twice"
    assert parse_fields([" count =2", "hp.lr=3e-5=x"], "u") == {"count": "2", "hp.lr": "3e-5=x"}


def test_every_mistake_in_one_spec_is_reported_at_once_in_the_grammars_words():
    refused = _refusal(lambda: job_spec({**BASE, "image": "", "role": "admin", "count": "0", "spot": "maybe"}))
    assert refused.usage == SUBMIT_USAGE
    assert "image is missing: e.g. image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest" in refused.problems
    assert "count: 0 is out of range; count is 1 to 100" in refused.problems
    assert "spot: 'maybe' is not true or false" in refused.problems
    assert any(p.startswith("role: 'admin' is not an IAM role ARN") for p in refused.problems)


def test_a_mistake_in_the_whole_request_is_reported_without_a_field_label():
    refused = _refusal(lambda: job_spec({**BASE, "max_wait": "2h"}, "u"))
    assert refused.problems == ["max_wait applies only to spot training (spot=true)"]


def test_a_spec_without_optional_fields_takes_the_defaults():
    spec = job_spec(BASE)
    assert (spec.priority, spec.retry_budget, spec.preset, spec.hyperparameters) == (5, 2, None, {})
    assert job_spec({**BASE, "preset": ""}).preset is None
    assert job_spec({**BASE, "preset": "nlp"}).preset == "nlp"
    assert BadCommand(["p"]).usage == ""


def test_a_sweep_exactly_at_the_limit_is_accepted_and_one_more_is_refused_with_the_sweep_usage():
    fields = {**BASE, "hp.lr": "1,2,3", "hp.batch": "16,32"}
    assert len(sweep_specs(fields, max_size=6)) == 6
    refused = _refusal(lambda: sweep_specs({**fields, "hp.seed": "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"}, max_size=100))
    assert refused.problems == ["this sweep has 102 combinations; the limit is 100"] and refused.usage == SWEEP_USAGE
    big = _refusal(lambda: sweep_specs({**BASE, "hp.a": ",".join(map(str, range(50))), "hp.b": ",".join(map(str, range(30)))}, max_size=1000, usage="u"))
    assert big.problems == ["this sweep has 1,500 combinations; the limit is 1,000"] and big.usage == "u"


def test_a_list_of_two_values_is_a_sweep_and_a_single_value_is_not():
    assert [s.hyperparameters for s in sweep_specs({**BASE, "hp.lr": "1e-5,3e-5"}, max_size=10)] == [{"lr": "1e-5"}, {"lr": "3e-5"}]
    refused = _refusal(lambda: sweep_specs({**BASE, "hp.lr": "1e-5"}, max_size=10, usage="u"))
    assert refused.problems == ["a sweep needs at least one hp.<name> with a comma list, e.g. hp.lr=1e-5,3e-5"]
    assert refused.usage == "u"


@pytest.mark.parametrize(
    ("lr", "problem"), [("1e-5,1e-5", "hp.lr lists a value twice"), ("1e-5,,3e-5", "hp.lr has an empty value in its list")]
)
def test_a_sweep_list_with_a_repeated_or_empty_value_is_refused(lr, problem):
    refused = _refusal(lambda: sweep_specs({**BASE, "hp.lr": lr}, max_size=10, usage="u"))
    assert refused.problems == [problem] and refused.usage == "u"


def test_every_sweep_job_inherits_the_knobs_and_is_numbered_to_the_width_of_the_sweep():
    specs = sweep_specs({**BASE, "hp.lr": ",".join(f"{i}e-5" for i in range(1, 11)), "priority": "7", "retries": "4", "preset": "nlp"}, max_size=20)
    assert [s.name for s in specs][:2] == ["grid-01", "grid-02"] and specs[-1].name == "grid-10"
    assert {(s.priority, s.retry_budget, s.preset) for s in specs} == {(7, 4, "nlp")}
    assert specs[0].job_args.HyperParameters == {"lr": "1e-5"}


def test_a_sweep_without_a_name_is_refused_for_its_name_with_the_sweep_usage():
    fields = {k: v for k, v in BASE.items() if k != "name"}
    refused = _refusal(lambda: sweep_specs({**fields, "hp.lr": "1,2"}, max_size=10, usage="u"))
    assert refused.problems == ["name is missing: e.g. name=bert-lr3"] and refused.usage == "u"


def test_volume_checkpoint_and_the_lowest_count_priority_and_retries_map_to_their_fields():
    assert job_spec({**BASE, "volume": "1"}).job_args.ResourceConfig.VolumeSizeInGB == 1
    spec = job_spec({**BASE, "volume": "100", "checkpoint": "s3://out-bucket/ckpt", "count": "1", "priority": "0", "retries": "0"})
    request = spec.job_args.to_request("grid-a1")
    assert request["ResourceConfig"] == {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100}
    assert request["CheckpointConfig"] == {"S3Uri": "s3://out-bucket/ckpt"}
    assert (spec.priority, spec.retry_budget) == (0, 0)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("volume", "0", "volume: 0 is out of range; volume is 1 to 16384 GB"),
        ("volume", "16385", "volume: 16385 is out of range; volume is 1 to 16384 GB"),
        ("volume", "big", "volume: 'big' is not a whole number; volume is 1 to 16384 GB"),
        ("priority", "10", "priority: 10 is out of range; priority is 0 (lowest) to 9 (highest)"),
        ("retries", "21", "retries: 21 is out of range; retries is 0 to 20"),
        ("count", "101", "count: 101 is out of range; count is 1 to 100"),
        ("max_runtime", "soon", "max_runtime: 'soon' is not a duration; write e.g. 1h, 90m, 1h30m or 3600 (seconds)"),
    ],
)
def test_a_number_out_of_its_range_is_refused_saying_the_range(field, value, problem):
    assert _refusal(lambda: job_spec({**BASE, field: value})).problems == [problem]


def test_a_duration_may_be_twenty_characters_long_and_no_longer():
    assert duration("0" * 19 + "1") == 1
    with pytest.raises(ValueError):
        duration("0" * 20 + "1")


def test_every_malformed_word_is_reported_even_after_a_repeated_key():
    refused = _refusal(lambda: parse_fields(["name=a", "name=b", "oops"], "u"))
    assert refused.problems == ["name is given twice", "'oops' is not key=value"]
