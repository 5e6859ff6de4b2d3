"""Read `template.yaml`, the contract of the deployable system, for tests and local mode.

CloudFormation's short tags (``!Ref``, ``!GetAtt``, ``!Sub`` …) are loaded as their long form
(``{"Ref": …}``) so the template can be inspected as plain data. :func:`create_jobs_table`
builds a DynamoDB table (moto, or any endpoint) from the template's own table properties.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parent.parent / "template.yaml"

_TAGS = {
    "Ref": "Ref",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "FindInMap": "Fn::FindInMap",
    "ImportValue": "Fn::ImportValue",
    "GetAZs": "Fn::GetAZs",
    "Base64": "Fn::Base64",
    "Condition": "Condition",
}


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic functions."""


def _construct(tag: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        return {tag: value}

    return construct


for _short, _long in _TAGS.items():
    _CfnLoader.add_constructor(f"!{_short}", _construct(_long))


# Parsed templates by their text's digest: parsing template.yaml takes ~80 ms and the tests
# create a jobs table from it hundreds of times per process; reading, hashing and copying ~1 ms.
_PARSED: dict[bytes, dict[str, Any]] = {}
_PARSED_KEPT = 16


def load_template(path: Path | str = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data, intrinsic functions in their long form: a copy of its own
    for every caller (callers change theirs)."""
    text = Path(path).read_bytes()
    key = hashlib.sha256(text).digest()
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = yaml.load(text.decode("utf-8"), Loader=_CfnLoader)
        if len(_PARSED) >= _PARSED_KEPT:
            _PARSED.clear()
        _PARSED[key] = parsed
    return copy.deepcopy(parsed)


def table_properties(template: dict[str, Any] | None = None, logical_id: str = "JobsTable") -> dict[str, Any]:
    template = template or load_template()
    resource = template["Resources"][logical_id]
    if resource["Type"] != "AWS::DynamoDB::Table":
        raise ValueError(f"{logical_id} is a {resource['Type']}, not a DynamoDB table")
    return resource["Properties"]


def create_table_request(table_name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """The CreateTable request equivalent to the template's table properties."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    if properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    if properties.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    return request


def create_jobs_table(dynamodb_client: Any, table_name: str, template: dict[str, Any] | None = None) -> None:
    """Create the jobs table as the template declares it and wait until it is active."""
    properties = table_properties(template)
    dynamodb_client.create_table(**create_table_request(table_name, properties))
    dynamodb_client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.05})
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb_client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
        )


def create_topic(sns_client: Any, name: str = "trainbot-notify") -> str:
    """Create the notification topic (the template's NotifyTopic has no properties that a
    local stand-in needs) and return its ARN."""
    return sns_client.create_topic(Name=name)["TopicArn"]
