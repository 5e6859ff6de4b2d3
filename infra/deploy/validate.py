"""The offline checker of `template.yaml`: what CI runs before anything could be deployed.

    python -m infra.deploy.validate [template.yaml]     # exit 1, one line per problem

Stages, each on what the previous one produced (no AWS call anywhere):

1. **cfn-lint** on the SAM template as written;
2. **the SAM transform** (aws-sam-translator, run here with a static managed-policy map and a
   fixed region, local ``CodeUri`` replaced by a placeholder S3 URI as ``sam package`` would);
3. **cfn-lint on the transformed template**: what CloudFormation will actually get, so errors
   inside SAM resources (a bad ``!Ref`` in an environment variable, a misspelt property) that
   the SAM-aware pass lets through are caught;
4. **Trainbot's own checks** on the transformed template: every ``Ref``/``GetAtt``/``Sub``
   variable resolves; no ``*`` (or wildcard) action, no ``NotAction``/``NotResource``, no
   ``Resource: "*"`` in any IAM policy (but for a statement of actions that have no resource
   types, ``pricing:GetProducts``); only allow-listed managed policies; ``iam:PassRole``
   only on explicit roles (parameters) and only with ``iam:PassedToService:
   sagemaker.amazonaws.com``; SageMaker actions only on ``training-job/${JobIdPrefix}*``;
   every schedule expression well-formed; a dead-letter queue on every EventBridge target and
   an on-failure destination for every function (all of them are invoked asynchronously);
   every name derived from the stack name fits its service's limit for a stack name as long as
   ``Metadata.Trainbot.MaxStackNameLength`` promises (and, with ``--stack-name``, for that name).

``tests/deploy`` runs :func:`validate` on the real template and on deliberately broken copies.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.template import TEMPLATE_PATH, load_template

REGION = "us-east-1"
PLACEHOLDER_CODE_URI = "s3://trainbot-offline-validation/code.zip"
BASIC_EXECUTION_ROLE = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
# Managed policies a role may carry: logs only (CreateLogGroup/Stream, PutLogEvents).
ALLOWED_MANAGED_POLICIES = frozenset({BASIC_EXECUTION_ROLE})
# What SAM's managed-policy names resolve to, so the transform never asks IAM.
MANAGED_POLICY_MAP = {"AWSLambdaBasicExecutionRole": BASIC_EXECUTION_ROLE}
PSEUDO_PARAMETERS = frozenset(
    {
        "AWS::AccountId",
        "AWS::NotificationARNs",
        "AWS::NoValue",
        "AWS::Partition",
        "AWS::Region",
        "AWS::StackId",
        "AWS::StackName",
        "AWS::URLSuffix",
    }
)
SAGEMAKER_RESOURCE_SUFFIX = ":training-job/${JobIdPrefix}*"
PASSED_TO_SERVICE = "sagemaker.amazonaws.com"
_RATE = re.compile(r"^rate\((1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))\)$")
_CRON = re.compile(r"^cron\((\S+ ){5}\S+\)$")
_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")
# Names CloudFormation passes on to a service, and the longest that service accepts.
NAME_LIMITS = {
    ("AWS::Lambda::Function", "FunctionName"): 64,
    ("AWS::Events::Rule", "Name"): 64,
    ("AWS::Scheduler::Schedule", "Name"): 64,
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::SNS::Topic", "TopicName"): 256,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): 255,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::SecretsManager::Secret", "Name"): 512,
}
STACK_NAME = "${AWS::StackName}"
# CloudFormation's own rule for stack names.
_STACK_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


@dataclass(frozen=True)
class Problem:
    stage: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"[{self.stage}] {self.where}: {self.message}"


@dataclass
class Result:
    problems: list[Problem] = field(default_factory=list)
    transformed: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


# --- stages --------------------------------------------------------------------------------------


def validate(path: Path | str = TEMPLATE_PATH, *, cfn_lint: bool = True, stack_name: str | None = None) -> Result:
    """Run every stage on the template at ``path``; stages after a failed transform are skipped.
    ``cfn_lint=False`` skips both cfn-lint passes (tests of Trainbot's own checks, for speed);
    ``stack_name`` also checks the names a stack of that name would derive."""
    path = Path(path)
    result = Result()
    if cfn_lint:
        result.problems += lint(path.read_text(encoding="utf-8"), stage="cfn-lint", filename=str(path))
    template = load_template(path)
    transformed, problems = transform(template)
    result.problems += problems
    if transformed is None:
        return result
    result.transformed = transformed
    if cfn_lint:
        result.problems += lint(json.dumps(transformed, indent=1), stage="cfn-lint (transformed)", filename="transformed")
    result.problems += check_references(transformed)
    result.problems += check_policies(transformed)
    result.problems += check_schedules(transformed)
    result.problems += check_failure_destinations(transformed)
    result.problems += check_name_lengths(transformed, declared_max_stack_name(template), stack_name)
    return result


def lint(text: str, *, stage: str, filename: str) -> list[Problem]:
    """cfn-lint errors and warnings (informational matches are not problems)."""
    from cfnlint.api import lint as cfn_lint

    problems = []
    for match in cfn_lint(text, regions=[REGION]):
        rule_id = match.rule.id
        if rule_id.startswith("I"):
            continue
        problems.append(Problem(stage, f"{filename}:{match.linenumber}", f"{rule_id} {match.message}"))
    return problems


def transform(template: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Problem]]:
    """The SAM transform, offline. Returns (CloudFormation template, problems)."""
    import boto3
    from samtranslator.model.exceptions import InvalidDocumentException, InvalidTemplateException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    template = _with_placeholder_code(copy.deepcopy(template))
    # A session with a region and no credentials: the translator only reads its region name.
    session = boto3.session.Session(region_name=REGION, aws_access_key_id="offline", aws_secret_access_key="offline")
    translator = Translator(None, Parser(), boto_session=session)
    try:
        return translator.translate(template, {}, get_managed_policy_map=lambda: MANAGED_POLICY_MAP), []
    except InvalidDocumentException as exc:
        return None, [Problem("sam-transform", _cause_where(cause), _cause_message(cause)) for cause in exc.causes]
    except InvalidTemplateException as exc:
        return None, [Problem("sam-transform", "template", exc.message)]


def _cause_where(cause: Any) -> str:
    return getattr(cause, "_logical_id", None) or getattr(cause, "logical_id", None) or "template"


def _cause_message(cause: Any) -> str:
    return getattr(cause, "message", None) or str(cause)


def _with_placeholder_code(template: dict[str, Any]) -> dict[str, Any]:
    """Local ``CodeUri`` (what ``sam build`` packages) becomes an S3 URI, as after ``sam package``."""
    globals_ = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_.get("CodeUri"), str) and not globals_["CodeUri"].startswith("s3://"):
        globals_["CodeUri"] = PLACEHOLDER_CODE_URI
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function":
            code = properties.get("CodeUri")
            if isinstance(code, str) and not code.startswith("s3://"):
                properties["CodeUri"] = PLACEHOLDER_CODE_URI
    return template


# --- references ----------------------------------------------------------------------------------


def check_references(template: dict[str, Any]) -> list[Problem]:
    """Every Ref, GetAtt, Sub variable and condition name resolves."""
    parameters = set(template.get("Parameters", {}))
    resources = set(template.get("Resources", {}))
    conditions = set(template.get("Conditions", {}))
    names = parameters | resources | PSEUDO_PARAMETERS
    problems = []

    def bad(where: str, message: str) -> None:
        problems.append(Problem("references", where, message))

    for where, key, value, local in _intrinsics(template):
        if key == "Ref":
            if value not in names:
                bad(where, f"!Ref {value} names no parameter, resource or pseudo parameter")
        elif key == "Fn::GetAtt":
            target = value[0] if isinstance(value, list) and value else str(value).split(".", 1)[0]
            if target not in resources:
                bad(where, f"!GetAtt {target}… names no resource")
        elif key == "Fn::Sub":
            text = value if isinstance(value, str) else value[0]
            for variable in _SUB_VARIABLE.findall(text if isinstance(text, str) else ""):
                head = variable.split(".", 1)[0]
                if variable in local or head in local:
                    continue
                if "." in variable and head in resources:
                    continue
                if variable not in names:
                    bad(where, f"!Sub variable ${{{variable}}} names no parameter, resource or pseudo parameter")
        elif key in {"Fn::If", "Condition"}:
            name = value[0] if key == "Fn::If" and isinstance(value, list) else value
            if isinstance(name, str) and name not in conditions:
                bad(where, f"condition {name} is not declared")
    for logical_id, resource in template.get("Resources", {}).items():
        condition = resource.get("Condition")
        if condition is not None and condition not in conditions:
            bad(f"Resources.{logical_id}", f"condition {condition} is not declared")
    return problems


def _intrinsics(node: Any, where: str = "", local: frozenset[str] = frozenset()) -> Iterator[tuple[str, str, Any, frozenset[str]]]:
    """(path, function, argument, Sub-local names) for every intrinsic function in ``node``."""
    if isinstance(node, dict):
        if len(node) == 1:
            (key, value), = node.items()
            if key in {"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::If", "Condition"} and not (key == "Condition" and not isinstance(value, str)):
                sub_local = local
                if key == "Fn::Sub" and isinstance(value, list) and len(value) == 2 and isinstance(value[1], dict):
                    sub_local = local | frozenset(value[1])
                yield where, key, value, sub_local
                if key == "Fn::Sub" and isinstance(value, list) and len(value) == 2:
                    yield from _intrinsics(value[1], f"{where}.Fn::Sub[1]", local)
                    return
        for key, value in node.items():
            if key == "Condition" and isinstance(value, str) and len(node) > 1:
                continue  # a resource's or statement's own Condition key, checked elsewhere
            yield from _intrinsics(value, f"{where}.{key}" if where else key, local)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _intrinsics(value, f"{where}[{index}]", local)


# --- IAM -----------------------------------------------------------------------------------------


def policy_documents(template: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(where, kind, document): identity policies ("identity") of roles and policies, and
    resource policies ("resource") of queues and topics."""
    for logical_id, resource in template.get("Resources", {}).items():
        kind, properties = resource.get("Type"), resource.get("Properties") or {}
        if kind == "AWS::IAM::Role":
            for policy in properties.get("Policies") or []:
                yield f"{logical_id}.{policy.get('PolicyName')}", "identity", policy.get("PolicyDocument") or {}
        elif kind in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}:
            yield logical_id, "identity", properties.get("PolicyDocument") or {}
        elif kind in {"AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"}:
            yield logical_id, "resource", properties.get("PolicyDocument") or {}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = document.get("Statement") or []
    return [found] if isinstance(found, dict) else list(found)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# Actions AWS defines with no resource types (the Service Authorization Reference lists none
# for them): a policy can only name them with Resource "*". A statement of these alone may.
RESOURCE_STAR_ONLY = frozenset({"pricing:GetProducts", "sagemaker:ListTrainingPlans", "sagemaker:ListTrainingJobs"})
# Read-only plan actions on the account's training plans (any name: plans are bought outside the stack).
TRAINING_PLAN_READS = frozenset({"sagemaker:DescribeTrainingPlan"})
TRAINING_PLAN_RESOURCE_SUFFIX = ":training-plan/*"


def check_policies(template: dict[str, Any]) -> list[Problem]:
    problems = []

    def bad(where: str, message: str) -> None:
        problems.append(Problem("least-privilege", where, message))

    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::IAM::Role":
            for arn in (resource.get("Properties") or {}).get("ManagedPolicyArns") or []:
                if arn not in ALLOWED_MANAGED_POLICIES:
                    bad(logical_id, f"managed policy {json.dumps(arn)} is not allow-listed (grant what the code calls inline)")

    for where, kind, document in policy_documents(template):
        for index, statement in enumerate(statements(document)):
            at = f"{where}.Statement[{index}]" + (f" ({statement['Sid']})" if statement.get("Sid") else "")
            for forbidden in ("NotAction", "NotResource"):
                if forbidden in statement:
                    bad(at, f"{forbidden} grants everything else; list the actions and resources instead")
            actions = [a for a in as_list(statement.get("Action")) if isinstance(a, str)]
            for action in actions:
                if "*" in action or "?" in action:
                    bad(at, f"wildcard action {action!r}: list the exact actions the code calls")
            if kind != "identity" or statement.get("Effect") != "Allow":
                continue
            resources = as_list(statement.get("Resource"))
            if "*" in resources and not (actions and set(actions) <= RESOURCE_STAR_ONLY):
                bad(at, f"Resource '*' for {', '.join(actions)}: scope it to this stack's resources")
            if "iam:PassRole" in actions:
                problems.extend(_check_pass_role(at, statement, resources))
            sagemaker = [a for a in actions if a.startswith("sagemaker:") and a not in RESOURCE_STAR_ONLY]
            if sagemaker and set(sagemaker) <= TRAINING_PLAN_READS:
                for resource in resources:
                    text = resource.get("Fn::Sub") if isinstance(resource, dict) else resource
                    if not (isinstance(text, str) and text.endswith(TRAINING_PLAN_RESOURCE_SUFFIX)):
                        bad(at, f"{', '.join(sagemaker)} on {json.dumps(resource)}: only training-plan/* is allowed")
            elif sagemaker:
                for resource in resources:
                    text = resource.get("Fn::Sub") if isinstance(resource, dict) else resource
                    if not (isinstance(text, str) and text.endswith(SAGEMAKER_RESOURCE_SUFFIX)):
                        bad(at, f"{', '.join(sagemaker)} on {json.dumps(resource)}: only training-job/${{JobIdPrefix}}* is allowed")
    return problems


def _check_pass_role(at: str, statement: dict[str, Any], resources: list[Any]) -> list[Problem]:
    problems = []
    if as_list(statement.get("Action")) != ["iam:PassRole"]:
        problems.append(Problem("least-privilege", at, "iam:PassRole must have a statement of its own (its condition applies to it alone)"))
    passed_to = ((statement.get("Condition") or {}).get("StringEquals") or {}).get("iam:PassedToService")
    if as_list(passed_to) != [PASSED_TO_SERVICE]:
        problems.append(
            Problem("least-privilege", at, f"iam:PassRole without the condition StringEquals iam:PassedToService: {PASSED_TO_SERVICE}")
        )
    for resource in resources:
        literal = resource if isinstance(resource, str) else resource.get("Fn::Sub") if isinstance(resource, dict) else None
        if isinstance(literal, str) and "*" in literal:
            problems.append(Problem("least-privilege", at, f"iam:PassRole on {literal!r}: only the training role parameters"))
    return problems


# --- schedules and failure destinations ----------------------------------------------------------


def check_schedules(template: dict[str, Any]) -> list[Problem]:
    problems = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        expression = (resource.get("Properties") or {}).get("ScheduleExpression")
        if isinstance(expression, str) and not (_RATE.match(expression) or _CRON.match(expression)):
            problems.append(
                Problem("schedules", logical_id, f"malformed schedule {expression!r}: expected e.g. rate(1 minute), rate(5 minutes) or cron(…)")
            )
    return problems


def check_failure_destinations(template: dict[str, Any]) -> list[Problem]:
    """Every EventBridge target has a dead-letter queue; every function (all are invoked
    asynchronously: schedules, events, lazy self-invocations) has an on-failure destination."""
    problems = []
    resources = template.get("Resources", {})
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Events::Rule":
            for target in (resource.get("Properties") or {}).get("Targets") or []:
                if not (target.get("DeadLetterConfig") or {}).get("Arn"):
                    problems.append(Problem("dead-letters", logical_id, f"target {target.get('Id')} has no DeadLetterConfig"))
    with_destination = {
        (r.get("Properties") or {}).get("FunctionName", {}).get("Ref")
        for r in resources.values()
        if r.get("Type") == "AWS::Lambda::EventInvokeConfig"
        and ((r.get("Properties") or {}).get("DestinationConfig") or {}).get("OnFailure", {}).get("Destination")
    }
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        if logical_id not in with_destination and not (resource.get("Properties") or {}).get("DeadLetterConfig"):
            problems.append(Problem("dead-letters", logical_id, "no on-failure destination or dead-letter queue for its asynchronous invocations"))
    return problems


# --- names derived from the stack name ----------------------------------------------------------


def declared_max_stack_name(template: dict[str, Any]) -> int | None:
    """``Metadata.Trainbot.MaxStackNameLength``: the stack-name length the template promises."""
    value = ((template.get("Metadata") or {}).get("Trainbot") or {}).get("MaxStackNameLength")
    return int(value) if value is not None else None


def derived_names(template: dict[str, Any]) -> Iterator[tuple[str, str, int]]:
    """(where, ``Fn::Sub`` text, limit) of every limited name built from the stack name."""
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties") or {}
        for (kind, prop), limit in NAME_LIMITS.items():
            if resource.get("Type") != kind:
                continue
            value = properties.get(prop)
            text = value.get("Fn::Sub") if isinstance(value, dict) else None
            if isinstance(text, list):
                text = text[0]
            if isinstance(text, str) and STACK_NAME in text:
                yield f"{logical_id}.{prop}", text, limit


def max_stack_name_length(template: dict[str, Any]) -> tuple[int, str]:
    """The longest stack name every derived name fits with, and the name that sets it."""
    best, binding = 128, "CloudFormation's own limit"
    for where, text, limit in derived_names(template):
        fixed = len(text) - text.count(STACK_NAME) * len(STACK_NAME)
        allowed = (limit - fixed) // max(1, text.count(STACK_NAME))
        if allowed < best:
            best, binding = allowed, f"{where} ({text!r}, at most {limit} characters)"
    return best, binding


def check_name_lengths(template: dict[str, Any], declared: int | None, stack_name: str | None = None) -> list[Problem]:
    problems = []
    longest, binding = max_stack_name_length(template)
    for where, text, _limit in derived_names(template):
        others = [v for v in _SUB_VARIABLE.findall(text) if v != "AWS::StackName"]
        if others:
            problems.append(Problem("names", where, f"{text!r} derives a name from {', '.join(others)} too: its length cannot be checked"))
    if declared is None:
        problems.append(Problem("names", "Metadata.Trainbot", f"MaxStackNameLength is not declared (names allow {longest}: {binding})"))
    elif declared > longest:
        problems.append(Problem("names", "Metadata.Trainbot", f"MaxStackNameLength {declared} is more than {binding} allows: {longest}"))
    if stack_name is not None:
        if not _STACK_NAME_PATTERN.match(stack_name):
            problems.append(Problem("names", "stack name", f"{stack_name!r} is not a CloudFormation stack name (a letter, then letters, digits or dashes)"))
        elif len(stack_name) > longest:
            problems.append(Problem("names", "stack name", f"{stack_name!r} is {len(stack_name)} characters; {binding} allows {longest}"))
    return problems


# --- what the tests compare with the recorded calls ----------------------------------------------


def function_permissions(template: dict[str, Any], function_id: str) -> dict[str, list[Any]]:
    """``{action: [resources]}`` the role of ``function_id`` (transformed template) allows inline."""
    role = template["Resources"][function_id]["Properties"]["Role"]
    role_id = role["Fn::GetAtt"][0]
    allowed: dict[str, list[Any]] = {}
    for policy in template["Resources"][role_id]["Properties"].get("Policies") or []:
        for statement in statements(policy["PolicyDocument"]):
            if statement.get("Effect") != "Allow":
                continue
            for action in as_list(statement.get("Action")):
                allowed.setdefault(action, []).extend(as_list(statement.get("Resource")))
    return allowed


def function_environment(template: dict[str, Any], function_id: str) -> dict[str, Any]:
    """The environment CloudFormation gives ``function_id`` (transformed: Globals merged)."""
    properties = template["Resources"][function_id]["Properties"]
    return dict((properties.get("Environment") or {}).get("Variables") or {})


# --- CLI -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy.validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", default=str(TEMPLATE_PATH), help="the SAM template (default: template.yaml)")
    parser.add_argument("--transformed", metavar="FILE", help="also write the transformed template (JSON) here")
    parser.add_argument("--stack-name", help="also check the names a stack of this name would derive")
    args = parser.parse_args(argv)
    result = validate(args.template, stack_name=args.stack_name)
    if args.transformed and result.transformed is not None:
        Path(args.transformed).write_text(json.dumps(result.transformed, indent=2), encoding="utf-8")
    for problem in result.problems:
        print(problem, file=sys.stderr)
    if result.ok:
        print(f"{args.template}: OK (cfn-lint, SAM transform, cfn-lint on the result, references, least privilege, schedules, dead letters, names)")
        return 0
    print(f"{args.template}: {len(result.problems)} problem(s)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
