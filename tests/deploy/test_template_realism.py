"""template.yaml deploys into a fresh account and can be rolled back: no concurrency is reserved
at the default parameters (a new account's quota is 10 and Lambda keeps 10 unreserved), the
public bot has an optional cap, every trigger invokes a published alias, and every name derived
from the stack name fits its service's limit for the stack-name length the template promises."""

from __future__ import annotations

import re

import pytest

from infra.deploy.validate import check_name_lengths, declared_max_stack_name, function_permissions, max_stack_name_length, validate
from infra.template import TEMPLATE_PATH, load_template

FUNCTIONS = ["BotFunction", "LauncherFunction", "MonitorFunction", "ChartFunction"]


def _is_false_at_defaults(condition: str) -> bool:
    """Evaluate one of the template's ``!Not [!Equals [!Ref P, v]]`` conditions at P's default."""
    template = load_template()
    expression = template["Conditions"][condition]
    (equals,) = expression["Fn::Not"]
    parameter, value = equals["Fn::Equals"][0]["Ref"], equals["Fn::Equals"][1]
    return str(template["Parameters"][parameter]["Default"]) == str(value)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_reserves_concurrency_at_the_default_parameters(transformed, function):
    reserved = transformed["Resources"][function]["Properties"].get("ReservedConcurrentExecutions")
    if reserved is None:
        return
    condition, _when_true, when_false = reserved["Fn::If"]
    assert when_false == {"Ref": "AWS::NoValue"} and _is_false_at_defaults(condition), reserved


def test_the_public_bot_can_be_capped_and_the_launcher_reserved_by_parameters(transformed):
    bot = transformed["Resources"]["BotFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert bot == {"Fn::If": ["CapsBotConcurrency", {"Ref": "BotReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    launcher = transformed["Resources"]["LauncherFunction"]["Properties"]["ReservedConcurrentExecutions"]
    assert launcher["Fn::If"][1] == {"Ref": "LauncherReservedConcurrency"}
    assert load_template()["Parameters"]["LauncherReservedConcurrency"]["MaxValue"] == 1


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_trigger_invokes_the_live_alias_so_a_rollback_is_moving_it(transformed, function):
    resources = transformed["Resources"]
    alias = f"{function}Aliaslive"
    assert resources[alias]["Type"] == "AWS::Lambda::Alias" and resources[alias]["Properties"]["Name"] == "live"
    for name, resource in resources.items():
        properties = resource.get("Properties") or {}
        if resource["Type"] == "AWS::Lambda::Permission" and name.startswith(function):
            assert properties["FunctionName"] == {"Ref": alias}, name
        if resource["Type"] == "AWS::Events::Rule" and name.startswith(function):
            assert [t["Arn"] for t in properties["Targets"]] == [{"Ref": alias}], name
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig" and name.startswith(function):
            assert properties["Qualifier"] == "live", name
        if resource["Type"] == "AWS::Lambda::Url":
            assert properties["TargetFunctionArn"] == {"Ref": "BotFunctionAliaslive"}


def test_the_bot_may_invoke_its_own_alias_for_lazy_listeners(transformed):
    resources = [r["Fn::Sub"] for r in function_permissions(transformed, "BotFunction")["lambda:InvokeFunction"]]
    assert any(r.endswith(":function:${AWS::StackName}-bot:live") for r in resources)


def test_the_promised_stack_name_length_is_what_the_derived_names_allow(transformed):
    longest, binding = max_stack_name_length(transformed)
    assert declared_max_stack_name(load_template()) == longest == 45, binding
    assert check_name_lengths(transformed, 45, "t" * 45) == []
    problems = check_name_lengths(transformed, 45, "t" * 46)
    assert [p.where for p in problems] == ["stack name"] and "allows 45" in problems[0].message
    assert check_name_lengths(transformed, 45, "1-starts-with-a-digit")[0].where == "stack name"


def test_a_longer_derived_name_breaks_the_promise_and_the_validator_says_so(tmp_path):
    text = TEMPLATE_PATH.read_text(encoding="utf-8").replace(
        'RuleName: !Sub "${AWS::StackName}-training-job-state"', 'RuleName: !Sub "${AWS::StackName}-sagemaker-training-job-state-changes"'
    )
    broken = tmp_path / "template.yaml"
    broken.write_text(text, encoding="utf-8")
    problems = [str(p) for p in validate(broken, cfn_lint=False).problems]
    assert any("[names]" in p and "MaxStackNameLength 45" in p and "allows: 27" in p for p in problems), problems


def test_the_deploy_guide_states_the_stack_name_limit_and_the_rollback():
    from tests.deploy.test_deploy_guide import deploy_section

    section = deploy_section()
    stated = re.search(r"stack name of at most (\d+) characters", section)
    assert stated is not None and int(stated.group(1)) == declared_max_stack_name(load_template())
    assert "python -m infra.deploy.validate --stack-name" in section
    assert "aws lambda update-alias" in section and "--name live" in section
