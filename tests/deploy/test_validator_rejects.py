"""The offline checker fails on deliberately broken copies of template.yaml, naming the problem:
a CI run cannot go green with a template CloudFormation would refuse or IAM would regret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infra.deploy.validate import validate
from infra.template import TEMPLATE_PATH

PASS_ROLE_CONDITION = """              Condition:
                StringEquals:
                  iam:PassedToService: sagemaker.amazonaws.com
"""

# (name, text replaced, replacement, words the problem report must contain). The first ones
# run the whole check as CI does; the rest exercise Trainbot's own checks alone (cfn-lint, two
# seconds a pass, is proven by the first ones and by the CLI test).
BROKEN = [
    (
        "a bad !Ref in an environment variable",
        "TRAINBOT_JOB_ID_PREFIX: !Ref JobIdPrefix",
        "TRAINBOT_JOB_ID_PREFIX: !Ref JobIdPrefx",
        ["[references]", "!Ref JobIdPrefx names no parameter", "[cfn-lint (transformed)]", "JobIdPrefx"],
    ),
    (
        "a malformed schedule",
        "Schedule: rate(1 minute)",
        "Schedule: rate(1 minutes)",
        ["[schedules]", "malformed schedule 'rate(1 minutes)'", "E3027"],
    ),
    (
        "a * action",
        "                - sns:Publish\n              Resource: !Ref NotifyTopic",
        "                - '*'\n              Resource: !Ref NotifyTopic",
        ["[least-privilege]", "wildcard action '*'"],
    ),
]
BROKEN_OWN_CHECKS = [
    (
        "a bad !Sub variable in an environment variable",
        "SLACK_SECRET_ID: !Ref SlackSecret",
        'SLACK_SECRET_ID: !Sub "${SlackSecrett}"',
        ["[references]", "${SlackSecrett}"],
    ),
    (
        "a service-wide wildcard action",
        "                - sagemaker:DescribeTrainingJob\n",
        "                - sagemaker:*\n",
        ["[least-privilege]", "wildcard action 'sagemaker:*'"],
    ),
    (
        "another action beside pricing:GetProducts on every resource",
        "                - pricing:GetProducts\n",
        "                - pricing:GetProducts\n                - sns:Publish\n",
        ["[least-privilege]", "Resource '*' for pricing:GetProducts, sns:Publish"],
    ),
    (
        "PassRole without its condition",
        PASS_ROLE_CONDITION,
        "",
        ["[least-privilege]", "iam:PassRole without the condition", "iam:PassedToService"],
    ),
    (
        "SageMaker actions on every training job",
        "training-job/${JobIdPrefix}*",
        "training-job/*",
        ["[least-privilege]", "only training-job/${JobIdPrefix}* is allowed"],
    ),
    (
        "a misspelt property of a SAM function",
        "      ReservedConcurrentExecutions: !If [ReservesLauncher,",
        "      ReservedConcurency: !If [ReservesLauncher,",
        ["[sam-transform]", "LauncherFunction", "ReservedConcurency"],
    ),
    (
        "an EventBridge target without a dead-letter queue",
        "            Schedule: rate(5 minutes)\n            RetryPolicy:\n              MaximumRetryAttempts: 2\n              MaximumEventAgeInSeconds: 300\n            DeadLetterConfig:\n              Arn: !GetAtt DeadLetterQueue.Arn\n",
        "            Schedule: rate(5 minutes)\n",
        ["[dead-letters]", "MonitorFunctionSweep", "no DeadLetterConfig"],
    ),
]


@pytest.fixture(scope="module")
def original() -> str:
    return TEMPLATE_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "words", "cfn_lint"),
    [(*b[1:], True) for b in BROKEN] + [(*b[1:], False) for b in BROKEN_OWN_CHECKS],
    ids=[b[0] for b in BROKEN] + [b[0] for b in BROKEN_OWN_CHECKS],
)
def test_a_broken_copy_is_rejected_with_a_message_naming_the_problem(tmp_path, original, old, new, words, cfn_lint):
    assert original.count(old) >= 1, "the template changed: update this variant"
    broken = tmp_path / "template.yaml"
    broken.write_text(original.replace(old, new, 1), encoding="utf-8")

    result = validate(broken, cfn_lint=cfn_lint)

    report = "\n".join(map(str, result.problems))
    assert not result.ok
    assert all(word in report for word in words), report


def test_the_cli_exits_non_zero_and_prints_the_problems_for_a_broken_template(tmp_path, original):
    broken = tmp_path / "template.yaml"
    broken.write_text(original.replace(PASS_ROLE_CONDITION, ""), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "infra.deploy.validate", str(broken)],
        capture_output=True, text=True, cwd=Path(TEMPLATE_PATH).parent, timeout=120,
    )
    assert run.returncode == 1
    assert "iam:PassRole without the condition" in run.stderr and "1 problem(s)" in run.stderr
