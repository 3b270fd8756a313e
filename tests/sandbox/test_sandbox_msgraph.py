"""msgraph-sdk, authenticated by the real ManagedIdentityCredential, talks to the sandbox like to Graph."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sandbox.seed import EXAMPLE_ASSIGNMENT_EXTERNAL_ID, EXAMPLE_ASSIGNMENT_ID, EXAMPLE_PROVIDER_ID

ACTIVITY_PATH = (
    f"/employeeExperience/learningProviders/{EXAMPLE_PROVIDER_ID}/learningCourseActivities/{EXAMPLE_ASSIGNMENT_ID}"
)


@pytest.fixture
async def graph_service_client(sandbox, monkeypatch) -> AsyncIterator[object]:
    from azure.identity.aio import ManagedIdentityCredential
    from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph_core import GraphClientFactory

    for name, value in sandbox.identity_env().items():
        monkeypatch.setenv(name, value)
    credential = ManagedIdentityCredential()
    auth_provider = AzureIdentityAuthenticationProvider(
        credential, scopes=["https://graph.microsoft.com/.default"], allowed_hosts=["127.0.0.1"]
    )
    http_client = GraphClientFactory.create_with_default_middleware()
    adapter = GraphRequestAdapter(auth_provider, client=http_client)
    adapter.base_url = sandbox.graph_url
    try:
        yield GraphServiceClient(request_adapter=adapter)
    finally:
        await http_client.aclose()
        await credential.close()


def provider(client):
    return client.employee_experience.learning_providers.by_learning_provider_id(EXAMPLE_PROVIDER_ID)


async def test_patch_through_msgraph_sdk(sandbox, graph_service_client):
    from msgraph.generated.models.course_status import CourseStatus
    from msgraph.generated.models.learning_assignment import LearningAssignment

    body = LearningAssignment(
        odata_type="#microsoft.graph.learningAssignment", status=CourseStatus.Completed, completion_percentage=100
    )
    activities = provider(graph_service_client).learning_course_activities
    await activities.by_learning_course_activity_id(EXAMPLE_ASSIGNMENT_ID).patch(body)

    stored = sandbox.admin.activity(EXAMPLE_ASSIGNMENT_ID)
    assert (stored["status"], stored["completionPercentage"]) == ("completed", 100)
    (entry,) = sandbox.admin.requests(method="PATCH")
    assert entry["path"] == ACTIVITY_PATH
    assert entry["status"] == 204
    assert entry["body"] == {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "completionPercentage": 100,
        "status": "completed",
    }
    assert entry["headers"]["Authorization"] == "Bearer <redacted>"
    assert sandbox.admin.stats()["tokenRequests"] == 1


async def test_lookup_by_external_id_through_msgraph_sdk(graph_service_client):
    activity = (
        await provider(graph_service_client)
        .learning_course_activities_with_externalcourse_activity_id(EXAMPLE_ASSIGNMENT_EXTERNAL_ID)
        .get()
    )
    assert type(activity).__name__ == "LearningAssignment"
    assert activity.id == EXAMPLE_ASSIGNMENT_ID
    assert activity.externalcourse_activity_id == EXAMPLE_ASSIGNMENT_EXTERNAL_ID


async def test_graph_errors_surface_as_odata_errors(sandbox, graph_service_client):
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_http.middleware.options import RetryHandlerOption
    from msgraph.generated.models.course_status import CourseStatus
    from msgraph.generated.models.learning_assignment import LearningAssignment
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    body = LearningAssignment(odata_type="#microsoft.graph.learningAssignment", status=CourseStatus.Completed)
    activities = provider(graph_service_client).learning_course_activities
    with pytest.raises(ODataError) as caught:
        await activities.by_learning_course_activity_id("no-such-activity").patch(body)
    error = caught.value
    assert error.response_status_code == 404
    assert (error.error.code, error.error.message) == ("notFound", "The assignment ID requested doesn\u2019t exist.")
    assert error.error.inner_error.request_id == sandbox.admin.requests(method="PATCH")[-1]["requestId"]

    sandbox.admin.add_fault(status=429, retry_after=2, count=1)
    config = RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])
    with pytest.raises(ODataError) as caught:
        await activities.by_learning_course_activity_id(EXAMPLE_ASSIGNMENT_ID).patch(body, request_configuration=config)
    assert caught.value.response_status_code == 429
    assert caught.value.response_headers["retry-after"] == "2"
    assert caught.value.error.code == "tooManyRequests"
