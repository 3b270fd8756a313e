"""The Microsoft Graph adapter: finds and updates learningCourseActivity records with msgraph-sdk.

msgraph-sdk builds the URLs, request bodies and error objects. Responses are read as bytes rather than parsed into
models, because the first parsed entity of a process imports ~1,250 model modules (over a second of cold start)
and all the connector needs from a lookup is the id. The SDK's retry handler is left out: a throttled update goes
back on the queue with its delay instead of sleeping inside the invocation (see connector.app.apply_update).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from azure.core.exceptions import ClientAuthenticationError

from connector.app import tracing
from connector.domain.events import ASSIGNMENT, SELF_INITIATED
from connector.domain.failures import GraphFailure, Kind, first_line, parse_retry_after

if TYPE_CHECKING:
    import ssl

    from azure.core.credentials_async import AsyncTokenCredential
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.generated.models.learning_course_activity import LearningCourseActivity

    from connector.settings import Settings

REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


class GraphGateway:
    """One Graph client (and its connection pool) per tenant and worker process; create it once and reuse it.

    `tenant_id`: a customer tenant's client (its credential is that tenant's, see connector.adapters.tenants);
    None: the managed identity's own tenant."""

    def __init__(
        self,
        settings: Settings,
        credential: AsyncTokenCredential,
        verify: ssl.SSLContext | bool = True,
        tenant_id: str | None = None,
    ) -> None:
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from kiota_http.middleware import HeadersInspectionHandler
        from kiota_http.middleware.options import HeadersInspectionHandlerOption
        from msgraph.generated.models.o_data_errors.o_data_error import ODataError
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory
        from msgraph_core.middleware import GraphTelemetryHandler

        # The token goes only to the configured Graph host: a mistyped GRAPH_BASE_URL never receives it.
        auth = AzureIdentityAuthenticationProvider(
            credential, scopes=[settings.graph_scope], allowed_hosts=[settings.graph_host]
        )
        http = GraphClientFactory.create_with_custom_middleware(
            # Headers are inspected only for requests that ask (see _send): Graph's request-id goes in every log line.
            [GraphTelemetryHandler(), HeadersInspectionHandler(HeadersInspectionHandlerOption(False, False))],
            client=httpx.AsyncClient(
                timeout=REQUEST_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=64), verify=verify
            ),
        )
        self._http = http
        self._credential = credential
        self._settings = settings
        self.tenant_id = tenant_id
        self._adapter = GraphRequestAdapter(auth, client=http)
        self._adapter.base_url = settings.graph_base_url
        self._base_url = settings.graph_base_url
        self.client = GraphServiceClient(request_adapter=self._adapter)
        """msgraph-sdk's client on the same pipeline and token, for the operator commands (grant-permissions)."""
        self._errors: dict[str, Any] = {"XXX": ODataError}
        self._inspect = HeadersInspectionHandlerOption

    async def close(self) -> None:
        await self._http.aclose()
        await self._credential.close()

    async def token(self) -> str:
        """A Graph token of this client's credential (check reads its roles); azure.identity's errors as raised."""
        return (await self._credential.get_token(self._settings.graph_scope)).token

    def _provider(self, registration_id: str) -> Any:
        return self.client.employee_experience.learning_providers.by_learning_provider_id(registration_id)

    async def find_activity(self, registration_id: str, external_id: str) -> dict[str, Any]:
        """GET …/learningCourseActivities(externalcourseActivityId='…'): the activity's JSON."""
        # OData doubles a quote inside a string literal; the SDK percent-encodes but does not double it.
        literal = external_id.replace("'", "''")
        builder = self._provider(registration_id).learning_course_activities_with_externalcourse_activity_id(literal)
        info = builder.to_get_request_information()
        info.url = self.activity_url(registration_id, external_literal=literal)
        body, _ = await self._send(info, "bytes")
        return json.loads(body) if body else {}

    async def get_provider(self, registration_id: str) -> dict[str, Any]:
        """GET /employeeExperience/learningProviders/{registrationId}: the provider's JSON."""
        body, _ = await self._send(self._provider(registration_id).to_get_request_information(), "bytes")
        return json.loads(body) if body else {}

    async def get_activity(self, registration_id: str, activity_id: str) -> dict[str, Any]:
        """GET …/learningProviders/{registrationId}/learningCourseActivities/{id}: the activity's JSON, found only
        among this provider's activities. Should Graph not serve that URL (400 or 405; it documents only the
        tenant-wide one), the tenant-wide GET, with its learningProviderId for the caller to check."""
        activities = self._provider(registration_id).learning_course_activities
        info = activities.by_learning_course_activity_id(activity_id).to_get_request_information()
        info.url = self.activity_url(registration_id, activity_id)
        try:
            body, _ = await self._send(info, "bytes")
        except GraphFailure as failure:
            if failure.status not in (400, 405):
                raise
            tenant_wide = self.client.employee_experience.learning_course_activities
            info = tenant_wide.by_learning_course_activity_id(activity_id).to_get_request_information()
            info.url = self.activity_url(None, activity_id)
            body, _ = await self._send(info, "bytes")
        return json.loads(body) if body else {}

    async def find_users(self, odata_filter: str, *, advanced: bool = False) -> list[dict[str, Any]]:
        """GET /users?$filter=…&$select=id; `advanced` adds what Graph's advanced queries (employeeId) need."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.users_request_builder import UsersRequestBuilder

        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            filter=odata_filter, select=["id"], top=2, count=True if advanced else None
        )
        config = RequestConfiguration(query_parameters=query)
        if advanced:
            config.headers.add("ConsistencyLevel", "eventual")
        body, _ = await self._send(self.client.users.to_get_request_information(config), "bytes")
        return list(json.loads(body).get("value", [])) if body else []

    async def find_content(self, registration_id: str, external_id: str) -> dict[str, Any]:
        """GET …/learningProviders/{registrationId}/learningContents(externalId='…')."""
        builder = self._provider(registration_id).learning_contents_with_external_id(external_id.replace("'", "''"))
        body, _ = await self._send(builder.to_get_request_information(), "bytes")
        return json.loads(body) if body else {}

    async def create_activity(
        self, registration_id: str, odata_type: str, identity: Mapping[str, str], changes: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST …/learningCourseActivities: a new activity with its identity fields (learner, content, external id;
        for an assignment its type and assigner) and the given properties. A peerRecommended assignment asks Graph
        to include unknown enum members, as Graph requires for values added after an enum was published."""
        model = build_model(odata_type, changes)
        model.learner_user_id = identity["learnerUserId"]
        model.learning_content_id = identity["learningContentId"]
        model.learning_provider_id = registration_id
        model.externalcourse_activity_id = identity["externalcourseActivityId"]
        if odata_type == ASSIGNMENT:
            model.additional_data["assignmentType"] = identity["assignmentType"]
            if identity.get("assignerUserId"):
                model.additional_data["assignerUserId"] = identity["assignerUserId"]
        info = self._provider(registration_id).learning_course_activities.to_post_request_information(model)
        if identity.get("assignmentType") == "peerRecommended":
            info.headers.add("Prefer", "include-unknown-enum-members")
        body, _ = await self._send(info, "bytes")
        return json.loads(body) if body else {}

    async def delete_activity(self, registration_id: str, activity_id: str) -> str | None:
        """DELETE …/learningProviders/{registrationId}/learningCourseActivities/{id}; returns Graph's request id."""
        builder = self._provider(registration_id).learning_course_activities.by_learning_course_activity_id(activity_id)
        info = builder.to_delete_request_information()
        info.url = self.activity_url(registration_id, activity_id)
        _, request_id = await self._send(info, None)
        return request_id

    async def update_activity(
        self, registration_id: str, activity_id: str, odata_type: str, changes: Mapping[str, Any]
    ) -> str | None:
        """PATCH …/learningCourseActivities/{id} with @odata.type and the given changeable properties only."""
        builder = self._provider(registration_id).learning_course_activities.by_learning_course_activity_id(activity_id)
        info = builder.to_patch_request_information(build_model(odata_type, changes))
        info.url = self.activity_url(registration_id, activity_id)
        _, request_id = await self._send(info, None)
        return request_id

    def activity_url(
        self, registration_id: str | None, activity_id: str | None = None, *, external_literal: str | None = None
    ) -> str:
        """The URL the SDK's URI template expands to, written once: kiota reads a request's URL several times per
        send and expands the template each time (a tenth of a callback's CPU). tests/unit/test_graph_body.py checks
        that both agree."""
        if registration_id is None:
            return f"{self._base_url}/employeeExperience/learningCourseActivities/{path_segment(activity_id or '')}"
        provider = f"{self._base_url}/employeeExperience/learningProviders/{path_segment(registration_id)}"
        if external_literal is not None:
            key = quote(external_literal, safe="")  # inside the key's quotes: never a segment of its own
            return f"{provider}/learningCourseActivities(externalcourseActivityId='{key}')"
        return f"{provider}/learningCourseActivities/{path_segment(activity_id or '')}"

    async def _send(self, info: RequestInformation, response_type: str | None) -> tuple[Any, str | None]:
        """Sends the request; returns the body (bytes, or None) and Graph's request-id."""
        method = info.http_method.value if info.http_method else "GET"
        started = time.perf_counter()
        attributes = {"http.request.method": method, "connector.tenant_id": self.tenant_id}
        with tracing.span(f"Graph {method}", attributes, kind=tracing.CLIENT) as current:
            try:
                body, request_id = await self._send_once(info, response_type)
            except GraphFailure as failure:
                current.set_attribute("http.response.status_code", failure.status or 0)
                current.set_attribute("connector.graph_request_id", failure.request_id or "")
                tracing.graph_latency((time.perf_counter() - started) * 1000, method, failure.status)
                raise
            current.set_attribute("http.response.status_code", 200 if body else 204)
            current.set_attribute("connector.graph_request_id", request_id or "")
            tracing.graph_latency((time.perf_counter() - started) * 1000, method, 200 if body else 204)
            return body, request_id

    async def _send_once(self, info: RequestInformation, response_type: str | None) -> tuple[Any, str | None]:
        from kiota_abstractions.api_error import APIError

        headers = self._inspect(inspect_request_headers=False, inspect_response_headers=True)
        info.add_request_options([headers])
        try:
            if response_type is None:
                await self._adapter.send_no_response_content_async(info, self._errors)
                body = None
            else:
                body = await self._adapter.send_primitive_async(info, response_type, self._errors)
            return body, _header(headers.response_headers, "request-id")
        except APIError as exc:
            failure = failure_from(exc)
            if self.tenant_id is not None:
                from connector.adapters.tenants import tenant_graph_failure

                failure = tenant_graph_failure(self._settings, self.tenant_id, failure)
            raise failure from None
        except httpx.TimeoutException as exc:  # sent, perhaps applied
            message = f"Graph did not answer in time ({type(exc).__name__})"
            raise GraphFailure(None, "timeout", message, kind=Kind.UNSURE) from None
        except httpx.TransportError as exc:
            message = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise GraphFailure(None, "connectionError", message, kind=Kind.UNSURE) from None
        except ClientAuthenticationError as exc:  # no token: nothing was sent
            if self.tenant_id is not None:
                from connector.adapters.tenants import tenant_token_failure

                raise tenant_token_failure(self._settings, self.tenant_id, str(exc)) from None
            problem = first_line(str(exc), "the managed identity endpoint gave no token")
            raise GraphFailure(None, "tokenUnavailable", problem, kind=Kind.TRANSIENT) from None


def path_segment(value: str) -> str:
    """An id as one path segment. Percent-encoding keeps dots, and HTTP clients and servers remove the dot segments
    "." and ".." (RFC 3986, 5.2.4): `..` would name the provider and `.` the collection. A dot-only id has its dots
    encoded too; any other id is left as the SDK writes it."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded and not encoded.strip(".") else encoded


def build_model(odata_type: str, changes: Mapping[str, Any]) -> LearningCourseActivity:
    """The msgraph-sdk model for the PATCH body; explicit nulls go through additional_data as real JSON nulls."""
    from msgraph.generated.models.course_status import CourseStatus
    from msgraph.generated.models.learning_assignment import LearningAssignment
    from msgraph.generated.models.learning_self_initiated_course import LearningSelfInitiatedCourse

    if odata_type == ASSIGNMENT:
        model: LearningCourseActivity = LearningAssignment(odata_type=ASSIGNMENT)
    elif odata_type == SELF_INITIATED:
        model = LearningSelfInitiatedCourse(odata_type=SELF_INITIATED)
    else:
        raise ValueError(f"not a learningCourseActivity type: {odata_type}")
    nulls: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            nulls[name] = None
        elif name == "status":
            model.status = CourseStatus(value)
        elif name == "completionPercentage":
            model.completion_percentage = value
        elif name in ("assignedDateTime", "completedDateTime", "startedDateTime"):
            setattr(model, _SNAKE[name], datetime.fromisoformat(value))
        elif name == "dueDateTime":
            from msgraph.generated.models.date_time_time_zone import DateTimeTimeZone

            model.due_date_time = DateTimeTimeZone(date_time=value["dateTime"], time_zone=value["timeZone"])
        elif name == "notes":
            from msgraph.generated.models.body_type import BodyType
            from msgraph.generated.models.item_body import ItemBody

            model.notes = ItemBody(content=value["content"], content_type=BodyType(value["contentType"]))
        else:
            raise ValueError(f"{name} is not a changeable property")
    model.additional_data.update(nulls)
    return model


_SNAKE = {
    "assignedDateTime": "assigned_date_time",
    "completedDateTime": "completed_date_time",
    "startedDateTime": "started_date_time",
}


def failure_from(exc: Any) -> GraphFailure:
    """A GraphFailure from msgraph-sdk's APIError/ODataError (also for callers that use `GraphGateway.client`)."""
    status = exc.response_status_code
    headers = exc.response_headers or {}
    code, message, request_id = "unknownError", str(exc.message or exc), None
    error = getattr(exc, "error", None)  # ODataError's main error, when the body was Graph's JSON
    if error is not None:
        code = error.code or code
        message = error.message or message
        inner = getattr(error, "inner_error", None)
        request_id = getattr(inner, "request_id", None) if inner is not None else None
    request_id = request_id or _header(headers, "request-id")
    return GraphFailure(status, code, message, request_id, parse_retry_after(_header(headers, "retry-after"), message))


def _header(headers: Any, name: str) -> str | None:
    try:
        value = headers.get(name)
    except AttributeError:
        return None
    if isinstance(value, (list, tuple, set)):
        value = next(iter(value), None)
    return str(value) if value else None
