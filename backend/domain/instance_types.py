"""SageMaker training instance types, as listed by the CreateTrainingJob API model, and the
rules of an instance-type fallback list (``instance=ml.p5.48xlarge,ml.p4d.24xlarge``).

The list is generated from botocore's `TrainingInstanceType` enum so that the domain does not
load botocore's 20 MB service model at import time; `tests/unit/test_instance_types.py` fails
when botocore learns a type this list lacks, so the copy cannot silently drift.

A fallback list keeps one request: the same image, count, volume and everything else, only
the type changes between attempts. So every type of a list must be able to run the same
training image: all of one accelerator family (:func:`accelerator_family`), no type twice.
"""

from collections.abc import Callable

TRAINING_INSTANCE_TYPES: frozenset[str] = frozenset(
    {
        "ml.c4.2xlarge",
        "ml.c4.4xlarge",
        "ml.c4.8xlarge",
        "ml.c4.xlarge",
        "ml.c5.18xlarge",
        "ml.c5.2xlarge",
        "ml.c5.4xlarge",
        "ml.c5.9xlarge",
        "ml.c5.xlarge",
        "ml.c5n.18xlarge",
        "ml.c5n.2xlarge",
        "ml.c5n.4xlarge",
        "ml.c5n.9xlarge",
        "ml.c5n.xlarge",
        "ml.c6i.12xlarge",
        "ml.c6i.16xlarge",
        "ml.c6i.24xlarge",
        "ml.c6i.2xlarge",
        "ml.c6i.32xlarge",
        "ml.c6i.4xlarge",
        "ml.c6i.8xlarge",
        "ml.c6i.xlarge",
        "ml.c7i-flex.12xlarge",
        "ml.c7i-flex.16xlarge",
        "ml.c7i-flex.2xlarge",
        "ml.c7i-flex.4xlarge",
        "ml.c7i-flex.8xlarge",
        "ml.c7i-flex.xlarge",
        "ml.c7i.12xlarge",
        "ml.c7i.16xlarge",
        "ml.c7i.24xlarge",
        "ml.c7i.2xlarge",
        "ml.c7i.48xlarge",
        "ml.c7i.4xlarge",
        "ml.c7i.8xlarge",
        "ml.c7i.large",
        "ml.c7i.xlarge",
        "ml.c8i-flex.12xlarge",
        "ml.c8i-flex.16xlarge",
        "ml.c8i-flex.2xlarge",
        "ml.c8i-flex.4xlarge",
        "ml.c8i-flex.8xlarge",
        "ml.c8i-flex.xlarge",
        "ml.c8i.12xlarge",
        "ml.c8i.16xlarge",
        "ml.c8i.24xlarge",
        "ml.c8i.2xlarge",
        "ml.c8i.32xlarge",
        "ml.c8i.48xlarge",
        "ml.c8i.4xlarge",
        "ml.c8i.8xlarge",
        "ml.c8i.96xlarge",
        "ml.c8i.xlarge",
        "ml.g4dn.12xlarge",
        "ml.g4dn.16xlarge",
        "ml.g4dn.2xlarge",
        "ml.g4dn.4xlarge",
        "ml.g4dn.8xlarge",
        "ml.g4dn.xlarge",
        "ml.g5.12xlarge",
        "ml.g5.16xlarge",
        "ml.g5.24xlarge",
        "ml.g5.2xlarge",
        "ml.g5.48xlarge",
        "ml.g5.4xlarge",
        "ml.g5.8xlarge",
        "ml.g5.xlarge",
        "ml.g6.12xlarge",
        "ml.g6.16xlarge",
        "ml.g6.24xlarge",
        "ml.g6.2xlarge",
        "ml.g6.48xlarge",
        "ml.g6.4xlarge",
        "ml.g6.8xlarge",
        "ml.g6.xlarge",
        "ml.g6e.12xlarge",
        "ml.g6e.16xlarge",
        "ml.g6e.24xlarge",
        "ml.g6e.2xlarge",
        "ml.g6e.48xlarge",
        "ml.g6e.4xlarge",
        "ml.g6e.8xlarge",
        "ml.g6e.xlarge",
        "ml.g7.12xlarge",
        "ml.g7.24xlarge",
        "ml.g7.2xlarge",
        "ml.g7.48xlarge",
        "ml.g7.4xlarge",
        "ml.g7.8xlarge",
        "ml.g7e.12xlarge",
        "ml.g7e.24xlarge",
        "ml.g7e.2xlarge",
        "ml.g7e.48xlarge",
        "ml.g7e.4xlarge",
        "ml.g7e.8xlarge",
        "ml.m4.10xlarge",
        "ml.m4.16xlarge",
        "ml.m4.2xlarge",
        "ml.m4.4xlarge",
        "ml.m4.xlarge",
        "ml.m5.12xlarge",
        "ml.m5.24xlarge",
        "ml.m5.2xlarge",
        "ml.m5.4xlarge",
        "ml.m5.large",
        "ml.m5.xlarge",
        "ml.m6i.12xlarge",
        "ml.m6i.16xlarge",
        "ml.m6i.24xlarge",
        "ml.m6i.2xlarge",
        "ml.m6i.32xlarge",
        "ml.m6i.4xlarge",
        "ml.m6i.8xlarge",
        "ml.m6i.large",
        "ml.m6i.xlarge",
        "ml.m7i-flex.12xlarge",
        "ml.m7i-flex.16xlarge",
        "ml.m7i-flex.2xlarge",
        "ml.m7i-flex.4xlarge",
        "ml.m7i-flex.8xlarge",
        "ml.m7i-flex.large",
        "ml.m7i-flex.xlarge",
        "ml.m7i.12xlarge",
        "ml.m7i.16xlarge",
        "ml.m7i.24xlarge",
        "ml.m7i.2xlarge",
        "ml.m7i.48xlarge",
        "ml.m7i.4xlarge",
        "ml.m7i.8xlarge",
        "ml.m7i.large",
        "ml.m7i.xlarge",
        "ml.m8i-flex.12xlarge",
        "ml.m8i-flex.16xlarge",
        "ml.m8i-flex.2xlarge",
        "ml.m8i-flex.4xlarge",
        "ml.m8i-flex.8xlarge",
        "ml.m8i-flex.large",
        "ml.m8i-flex.xlarge",
        "ml.m8i.12xlarge",
        "ml.m8i.16xlarge",
        "ml.m8i.24xlarge",
        "ml.m8i.2xlarge",
        "ml.m8i.32xlarge",
        "ml.m8i.48xlarge",
        "ml.m8i.4xlarge",
        "ml.m8i.8xlarge",
        "ml.m8i.96xlarge",
        "ml.m8i.large",
        "ml.m8i.xlarge",
        "ml.p2.16xlarge",
        "ml.p2.8xlarge",
        "ml.p2.xlarge",
        "ml.p3.16xlarge",
        "ml.p3.2xlarge",
        "ml.p3.8xlarge",
        "ml.p3dn.24xlarge",
        "ml.p4d.24xlarge",
        "ml.p4de.24xlarge",
        "ml.p5.48xlarge",
        "ml.p5.4xlarge",
        "ml.p5e.48xlarge",
        "ml.p5en.48xlarge",
        "ml.p6-b200.48xlarge",
        "ml.p6-b300.48xlarge",
        "ml.p6e-gb200.36xlarge",
        "ml.r5.12xlarge",
        "ml.r5.16xlarge",
        "ml.r5.24xlarge",
        "ml.r5.2xlarge",
        "ml.r5.4xlarge",
        "ml.r5.8xlarge",
        "ml.r5.large",
        "ml.r5.xlarge",
        "ml.r5d.12xlarge",
        "ml.r5d.16xlarge",
        "ml.r5d.24xlarge",
        "ml.r5d.2xlarge",
        "ml.r5d.4xlarge",
        "ml.r5d.8xlarge",
        "ml.r5d.large",
        "ml.r5d.xlarge",
        "ml.r6i.12xlarge",
        "ml.r6i.16xlarge",
        "ml.r6i.24xlarge",
        "ml.r6i.2xlarge",
        "ml.r6i.32xlarge",
        "ml.r6i.4xlarge",
        "ml.r6i.8xlarge",
        "ml.r6i.large",
        "ml.r6i.xlarge",
        "ml.r7i.12xlarge",
        "ml.r7i.16xlarge",
        "ml.r7i.24xlarge",
        "ml.r7i.2xlarge",
        "ml.r7i.48xlarge",
        "ml.r7i.4xlarge",
        "ml.r7i.8xlarge",
        "ml.r7i.large",
        "ml.r7i.xlarge",
        "ml.r8i-flex.12xlarge",
        "ml.r8i-flex.16xlarge",
        "ml.r8i-flex.2xlarge",
        "ml.r8i-flex.4xlarge",
        "ml.r8i-flex.8xlarge",
        "ml.r8i-flex.large",
        "ml.r8i-flex.xlarge",
        "ml.r8i.12xlarge",
        "ml.r8i.16xlarge",
        "ml.r8i.24xlarge",
        "ml.r8i.2xlarge",
        "ml.r8i.32xlarge",
        "ml.r8i.48xlarge",
        "ml.r8i.4xlarge",
        "ml.r8i.8xlarge",
        "ml.r8i.96xlarge",
        "ml.r8i.large",
        "ml.r8i.xlarge",
        "ml.t3.2xlarge",
        "ml.t3.large",
        "ml.t3.medium",
        "ml.t3.xlarge",
        "ml.trn1.2xlarge",
        "ml.trn1.32xlarge",
        "ml.trn1n.32xlarge",
        "ml.trn2.48xlarge",
    }
)


# The most types one job may list (its first choice included).
MAX_INSTANCE_CHOICES = 4


def accelerator_family(instance_type: str) -> str:
    """What a training image must be built for to run on ``instance_type``: ``nvidia`` (CUDA
    on x86), ``nvidia-arm`` (CUDA on Grace, arm64), ``neuron`` (AWS Trainium) or ``cpu``."""
    kind = instance_type.removeprefix("ml.").split(".", 1)[0]
    if kind.startswith(("trn", "inf")):
        return "neuron"
    if kind.startswith("p6e-gb"):
        return "nvidia-arm"
    if kind.startswith(("p", "g")):
        return "nvidia"
    return "cpu"


def instance_list_problems(types: list[str], *, first_checked: bool = False) -> list[str]:
    """What is wrong with ``types`` as one job's instance list (first choice first), in the
    ``/train`` grammar's words; empty when it is fine. ``first_checked``: the first type is
    validated elsewhere (the request model), so it is not named again here."""
    problems = []
    unknown = [t for t in types if t not in TRAINING_INSTANCE_TYPES]
    for instance_type in unknown[1:] if first_checked and unknown[:1] == types[:1] else unknown:
        problems.append(f"instance: {instance_type!r} is not a SageMaker training instance type; expected e.g. ml.p4d.24xlarge")
    if len(types) > MAX_INSTANCE_CHOICES:
        problems.append(f"instance: at most {MAX_INSTANCE_CHOICES} types in a fallback list, not {len(types)}")
    twice = sorted({t for t in types if types.count(t) > 1})
    if twice:
        problems.append(f"instance: {twice[0]} is listed twice")
    families = {t: accelerator_family(t) for t in types if t not in unknown}
    if len(set(families.values())) > 1:
        first = types[0] if types[0] in families else next(iter(families))
        other = next(t for t, f in families.items() if f != families[first])
        problems.append(
            f"instance: {first} ({families[first]}) and {other} ({families[other]}) cannot run the same training image; "
            "a fallback list keeps one image and one count, so list types of one kind"
        )
    return problems


def choose_instance_type(choices: list[str], has_room: Callable[[str], bool], avoid: str | None = None) -> str | None:
    """The type the next attempt uses: the most preferred of ``choices`` that has room (not
    held, under its limit), passing over ``avoid`` (the type whose capacity or quota error
    ended the previous attempt) while another has room. None: no type has room, the job waits.

    So a job goes back to its first choice as soon as that type has room again."""
    open_types = [t for t in choices if has_room(t)]
    preferred = [t for t in open_types if t != avoid]
    found = preferred or open_types
    return found[0] if found else None


def over_instance_limits(choices: list[str], count: int, limits: dict[str, int]) -> str | None:
    """Why a job of ``count`` instances on ``choices`` can never run under ``limits``
    (TRAINBOT_INSTANCE_LIMITS: most instances of a type in use at once), naming each limit and
    the request; None when some type of the list could fit (a type without a limit always can).
    A limit of 0 pauses its type (an operator drains it): its jobs wait, they are not failed."""
    if not choices or any(not limits.get(t) or count <= limits[t] for t in choices):
        return None
    named = ", ".join(f"{t} allows {limits[t]}" for t in choices)
    return (
        f"count {count} can never run: TRAINBOT_INSTANCE_LIMITS {named} "
        "instances in use at once; ask for fewer instances or another instance type"
    )
