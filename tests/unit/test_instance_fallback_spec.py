"""``instance=ml.p5.48xlarge,ml.p4d.24xlarge``: how every way in (the slash command's grammar,
the modal's and the CLI's fields, a CLI YAML spec) reads an instance-type fallback list, which
lists it refuses and why, and how the next attempt's type is chosen (issue 13, part 3)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.domain.instance_types import MAX_INSTANCE_CHOICES, accelerator_family, choose_instance_type
from backend.domain.model import Attempt
from backend.domain.spec import BadCommand, job_spec, sweep_specs
from backend.entrypoints.cli.specs import spec_fields
from bot.grammar import parse
from tests.bot_fixtures import GOOD_SUBMIT
from tests.conftest import T0, make_job

P5, P4D = "ml.p5.48xlarge", "ml.p4d.24xlarge"
BASE = {
    "name": "grid",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
}


def _problems(instance: str) -> list[str]:
    with pytest.raises(BadCommand) as refused:
        job_spec({**BASE, "instance": instance})
    return list(refused.value.problems)


def test_a_list_keeps_its_first_choice_in_the_request_and_the_rest_as_fallbacks_in_order():
    spec = job_spec({**BASE, "instance": f"{P5},{P4D},ml.p4de.24xlarge", "count": "2"})
    assert spec.job_args.instance_type == P5 and spec.job_args.instance_count == 2
    assert spec.fallback_types == (P4D, "ml.p4de.24xlarge")
    request = spec.job_args.to_request("grid-abc-a2", P4D)
    assert request["ResourceConfig"] == {"InstanceType": P4D, "InstanceCount": 2, "VolumeSizeInGB": 50}
    assert spec.job_args.to_request("grid-abc-a1")["ResourceConfig"]["InstanceType"] == P5  # unchanged


def test_one_type_has_no_fallbacks():
    assert job_spec({**BASE, "instance": P5}).fallback_types == ()


def test_the_slash_command_takes_a_list():
    text = GOOD_SUBMIT.replace("instance=ml.g5.xlarge", f"instance={P5},{P4D}")
    spec = job_spec(parse(text).fields)
    assert (spec.job_args.instance_type, spec.fallback_types) == (P5, (P4D,))


def test_a_cli_yaml_spec_takes_the_list_as_a_yaml_list_or_a_comma_string():
    assert spec_fields({"instance": [P5, P4D]})["instance"] == f"{P5},{P4D}"
    assert spec_fields({"instance": f"{P5},{P4D}"})["instance"] == f"{P5},{P4D}"


def test_every_sweep_job_inherits_the_list():
    specs = sweep_specs({**BASE, "instance": f"{P5},{P4D}", "hp.lr": "1,2"}, 10)
    assert [s.fallback_types for s in specs] == [(P4D,), (P4D,)]


@pytest.mark.parametrize(
    ("instance", "problem"),
    [
        (f"{P5},ml.p9.48xlarge", "instance: 'ml.p9.48xlarge' is not a SageMaker training instance type; expected e.g. ml.p4d.24xlarge"),
        (f"{P5},{P4D},{P5}", f"instance: {P5} is listed twice"),
        (f"{P5},,{P4D}", "instance: '' is not a SageMaker training instance type; expected e.g. ml.p4d.24xlarge"),
        (
            f"{P5},ml.trn1.32xlarge",
            f"instance: {P5} (nvidia) and ml.trn1.32xlarge (neuron) cannot run the same training image; "
            "a fallback list keeps one image and one count, so list types of one kind",
        ),
        (
            "ml.m5.xlarge,ml.g5.xlarge",
            "instance: ml.m5.xlarge (cpu) and ml.g5.xlarge (nvidia) cannot run the same training image; "
            "a fallback list keeps one image and one count, so list types of one kind",
        ),
        (
            f"{P5},ml.p6e-gb200.36xlarge",
            f"instance: {P5} (nvidia) and ml.p6e-gb200.36xlarge (nvidia-arm) cannot run the same training image; "
            "a fallback list keeps one image and one count, so list types of one kind",
        ),
        (
            "ml.g5.xlarge,ml.g5.2xlarge,ml.g5.4xlarge,ml.g5.8xlarge,ml.g5.12xlarge",
            f"instance: at most {MAX_INSTANCE_CHOICES} types in a fallback list, not 5",
        ),
    ],
)
def test_a_list_that_cannot_share_one_request_is_refused_naming_the_type(instance, problem):
    assert _problems(instance) == [problem]


def test_a_bad_first_choice_is_named_once_with_the_models_hint():
    problems = _problems(f"p5.48xlarge,{P4D}")
    assert problems == ["instance: 'p5.48xlarge' is not a SageMaker training instance type (did you mean ml.p5.48xlarge?); "
                        "expected e.g. ml.g5.xlarge, ml.p4d.24xlarge, ml.m5.large"]


def test_types_of_one_kind_and_different_sizes_may_share_a_list():
    assert job_spec({**BASE, "instance": "ml.g5.2xlarge,ml.g6.2xlarge,ml.g6e.xlarge"}).fallback_types == ("ml.g6.2xlarge", "ml.g6e.xlarge")
    assert {accelerator_family(t) for t in ("ml.trn1.32xlarge", "ml.trn1n.32xlarge", "ml.trn2.48xlarge")} == {"neuron"}


def test_a_stored_job_with_a_bad_list_is_refused_by_the_model():
    with pytest.raises(ValidationError, match="cannot run the same training image"):
        make_job(fallback_types=["ml.trn1.32xlarge"])


def test_the_most_preferred_type_with_room_is_chosen_passing_over_the_one_that_just_ran_out():
    room = {P5: True, P4D: True, "ml.p4de.24xlarge": True}
    choices = [P5, P4D, "ml.p4de.24xlarge"]
    assert choose_instance_type(choices, room.__getitem__) == P5
    assert choose_instance_type(choices, room.__getitem__, avoid=P5) == P4D
    assert choose_instance_type(choices, {**room, P4D: False}.__getitem__, avoid=P5) == "ml.p4de.24xlarge"
    # The refused type is still better than waiting when it is the only one with room.
    assert choose_instance_type(choices, {P5: True, P4D: False, "ml.p4de.24xlarge": False}.__getitem__, avoid=P5) == P5
    assert choose_instance_type(choices, lambda _t: False) is None


def test_an_attempt_without_a_recorded_type_ran_on_the_first_choice():
    job = make_job()
    old = Attempt(number=1, name=f"{job.job_id}-a1", claimed_at=T0)
    assert job.instance_type_of(old) == job.job_args.instance_type and job.park_key == job.job_args.instance_type
