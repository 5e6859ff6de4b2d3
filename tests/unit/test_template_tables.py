"""The jobs table tests use is built from template.yaml's own properties."""

from infra.template import create_table_request, load_template, table_properties


def test_the_template_declares_the_fixed_point_key_and_the_sparse_indexes():
    properties = table_properties()
    assert properties["KeySchema"] == [{"AttributeName": "JobId", "KeyType": "HASH"}]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    names = {index["IndexName"] for index in properties["GlobalSecondaryIndexes"]}
    assert {"Queue", "Active", "Owner", "ByDay", "Outbox"} <= names


def test_the_create_table_request_is_the_templates_properties():
    properties = table_properties()
    request = create_table_request("t", properties)
    assert request["GlobalSecondaryIndexes"] is properties["GlobalSecondaryIndexes"]
    assert request["AttributeDefinitions"] is properties["AttributeDefinitions"]


def test_short_form_intrinsics_load_as_their_long_form():
    outputs = load_template()["Outputs"]
    assert outputs["JobsTableName"]["Value"] == {"Ref": "JobsTable"}
