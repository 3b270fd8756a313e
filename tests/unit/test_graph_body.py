"""The PATCH body msgraph-sdk writes for an update: @odata.type, the changeable properties, real JSON nulls."""

from __future__ import annotations

import json

import pytest
from kiota_serialization_json.json_serialization_writer import JsonSerializationWriter

from connector.adapters.graph import build_model
from connector.domain.events import parse_event_json
from connector.domain.failures import parse_retry_after
from devtools.examples import (
    EXAMPLE_1_ASSIGNMENT,
    EXAMPLE_1_PATCH,
    EXAMPLE_2_PATCH,
    EXAMPLE_2_SELF_INITIATED,
    REGISTRATION_ID,
)


def written(odata_type: str, changes: dict) -> dict:
    writer = JsonSerializationWriter()
    writer.write_object_value(None, build_model(odata_type, changes))
    return json.loads(writer.get_serialized_content())


def test_example_1_is_written_exactly():
    update = parse_event_json(EXAMPLE_1_ASSIGNMENT, REGISTRATION_ID)
    assert written(update.odata_type, update.changes) == EXAMPLE_1_PATCH


def test_example_2_is_written_exactly():
    update = parse_event_json(EXAMPLE_2_SELF_INITIATED, REGISTRATION_ID)
    assert written(update.odata_type, update.changes) == EXAMPLE_2_PATCH


def test_explicit_nulls_are_json_nulls_under_graph_names():
    body = written(
        "#microsoft.graph.learningAssignment",
        {"status": "inProgress", "notes": None, "dueDateTime": None, "completionPercentage": None},
    )
    assert body == {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "status": "inProgress",
        "notes": None,
        "dueDateTime": None,
        "completionPercentage": None,
    }


def test_retry_after_from_the_header_or_from_graphs_message():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None, "Retry after 2 minutes") == 120.0
    assert parse_retry_after("5", "Retry after 2 minutes") == 5.0
    assert parse_retry_after(None, "Internal server error.") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize(
    "identifier", ["8ba2228a-e020-11ec-9d64-0242ac120003", "a b/c?d#e", "O'Brien", "é:ü@x", "7ba2:{guid}", "%41"]
)
def test_the_urls_written_once_are_the_sdks_own(identifier):
    """GraphGateway writes a request's URL itself (cheaper); it must be the SDK's URI-template expansion."""
    from connector.adapters.graph import GraphGateway
    from connector.settings import load_settings

    settings = load_settings({"GRAPH_BASE_URL": "http://127.0.0.1:1/v1.0"})
    gateway = GraphGateway(settings, credential=object())  # type: ignore[arg-type]  # nothing is sent
    provider = gateway.client.employee_experience.learning_providers.by_learning_provider_id(identifier)
    sdk = [
        provider.learning_course_activities.by_learning_course_activity_id(identifier).to_get_request_information(),
        gateway.client.employee_experience.learning_course_activities.by_learning_course_activity_id(
            identifier
        ).to_get_request_information(),
        provider.learning_course_activities_with_externalcourse_activity_id(identifier).to_get_request_information(),
    ]
    ours = [
        gateway.activity_url(identifier, identifier),
        gateway.activity_url(None, identifier),
        gateway.activity_url(identifier, external_literal=identifier),
    ]
    for info, url in zip(sdk, ours, strict=True):
        info.path_parameters["baseurl"] = settings.graph_base_url
        assert url == info.url
