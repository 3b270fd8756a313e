"""The Graph v1.0 routes the product uses, as synchronous functions over the store.

The server has already checked the bearer token, applied faults and parsed the body; here a request is a
:class:`GraphCall` (the caller's tenant data and token), a method, decoded path segments, the query and the
body, and the answer is ``(status, JSON object or None)`` or a raised :class:`GraphError`. Routing is by hand
because Graph's key segments (``learningCourseActivities(externalcourseActivityId='...')``) need OData decoding
a URL router would not do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .identity import TokenInfo
from .odata import key_segment, parse_eq_filter
from .rules import (
    APP_READ_ROLES,
    APP_ROLE_GRANT_ROLES,
    CONTENT_READ_ROLES,
    MSG_BAD_JSON,
    USER_READ_ROLES,
    CreateAnswers,
    GraphError,
    as_read,
    bad_request,
    check_odata_type,
    check_provider,
    check_read_role,
    check_write_role,
    delete_not_found,
    directory_forbidden,
    directory_not_found,
    forbidden,
    method_not_allowed,
    not_found,
    validate_create,
    validate_patch,
)
from .store import Store

Answer = tuple[int, dict[str, Any] | None]

INVALID_BODY: Final = object()  # the body was not JSON (distinct from an empty body, which is None)
_USER_FILTER_PROPS: Final = {
    "mail": "mail",
    "userprincipalname": "userPrincipalName",
    "employeeid": "employeeId",
    "id": "id",
}


def _segment_not_found(segment: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def _with_context(context: str, entity: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"@odata.context": context}
    result.update(entity)
    return result


def _select(entity: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return entity
    wanted = {s.strip() for s in select.split(",") if s.strip()}
    return {k: v for k, v in entity.items() if k in wanted}


@dataclass(slots=True)
class GraphCall:
    """What the routes need besides the request itself: the caller's tenant data, its token and preferences."""

    store: Store
    graph_url: str  # base of @odata.context URLs
    token: TokenInfo
    create_answers: CreateAnswers
    include_unknown_enums: bool  # the request sent Prefer: include-unknown-enum-members


def dispatch(call: GraphCall, method: str, segments: list[str], query: Any, body: Any) -> Answer:
    """Route one authenticated Graph request."""
    if not segments:
        raise _segment_not_found("")
    head = segments[0]
    if head == "employeeExperience":
        return _employee_experience(call, method, segments, body)
    if head == "users":
        return _users(call, method, segments, query)
    if head == "servicePrincipals" or head.startswith("servicePrincipals("):
        return _service_principals(call, method, segments, body)
    raise _segment_not_found(head)


# employeeExperience ---------------------------------------------------------------------------------------
def _employee_experience(call: GraphCall, method: str, segments: list[str], body: Any) -> Answer:
    n = len(segments)
    if n >= 3 and segments[1] == "learningProviders":
        registration_id = segments[2]
        if n == 3:
            return _provider(call, method, registration_id)
        segment = segments[3]
        if n == 4:
            if segment == "learningCourseActivities":
                if method != "POST":
                    raise method_not_allowed()
                return _create_activity(call, registration_id, body)
            external_id = key_segment(
                segment, "learningCourseActivities", ("externalcourseActivityId", "externalCourseActivityId")
            )
            if external_id is not None:
                return _activity_by_external(call, method, registration_id, external_id)
            content_external_id = key_segment(segment, "learningContents", ("externalId",))
            if content_external_id is not None:
                return _content(call, method, registration_id, external_id=content_external_id)
        elif n == 5 and segment == "learningCourseActivities":
            return _activity(call, method, registration_id, segments[4], body)
        elif n == 5 and segment == "learningContents":
            return _content(call, method, registration_id, content_id=segments[4])
        raise _segment_not_found(segments[min(n - 1, 4)])
    if n == 3 and segments[1] == "learningCourseActivities":
        if method != "GET":
            raise method_not_allowed()
        activity = call.store.activities.get(segments[2])
        if activity is None:
            raise not_found()
        check_read_role(call.token.roles, activity["@odata.type"])
        return 200, _with_context(
            f"{call.graph_url}/$metadata#employeeExperience/learningCourseActivities/$entity",
            as_read(activity, call.include_unknown_enums),
        )
    raise _segment_not_found(segments[1] if n > 1 else segments[0])


def _provider(call: GraphCall, method: str, registration_id: str) -> Answer:
    if method != "GET":
        raise method_not_allowed()
    provider = call.store.providers.get(registration_id)
    if provider is None:
        raise GraphError(404, "notFound", "The learning provider requested doesn\u2019t exist.")
    return 200, _with_context(f"{call.graph_url}/$metadata#employeeExperience/learningProviders/$entity", provider)


def _activity_answer(call: GraphCall, status: int, registration_id: str, activity: dict[str, Any]) -> Answer:
    context = (
        f"{call.graph_url}/$metadata#employeeExperience/learningProviders('{registration_id}')"
        "/learningCourseActivities/$entity"
    )
    return status, _with_context(context, as_read(activity, call.include_unknown_enums))


def _activity(call: GraphCall, method: str, registration_id: str, activity_id: str, body: Any) -> Answer:
    store = call.store
    roles = call.token.roles
    check_provider(store.providers.get(registration_id))
    activity = store.activities.get(activity_id)
    if method in ("PATCH", "DELETE"):
        check_write_role(roles, None if activity is None else activity["@odata.type"])
    elif method != "GET":
        raise method_not_allowed()
    if activity is None or activity["learningProviderId"] != registration_id:
        raise delete_not_found(activity_id) if method == "DELETE" else not_found()
    if method == "GET":
        check_read_role(roles, activity["@odata.type"])
        return _activity_answer(call, 200, registration_id, activity)
    if method == "DELETE":
        store.delete_activity(activity_id)
        return 204, None
    activity.update(validate_patch(activity, body, call.include_unknown_enums))
    return 204, None


def _activity_by_external(call: GraphCall, method: str, registration_id: str, external_id: str) -> Answer:
    if method != "GET":
        raise method_not_allowed()
    check_provider(call.store.providers.get(registration_id))
    activity = call.store.activity_by_external(registration_id, external_id)
    if activity is None:
        raise not_found()
    check_read_role(call.token.roles, activity["@odata.type"])
    return _activity_answer(call, 200, registration_id, activity)


def _create_activity(call: GraphCall, registration_id: str, body: Any) -> Answer:
    check_provider(call.store.providers.get(registration_id))
    if not isinstance(body, dict):
        raise bad_request(MSG_BAD_JSON)
    odata_type = check_odata_type(body)
    check_write_role(call.token.roles, odata_type)
    activity = validate_create(registration_id, body, odata_type, call.include_unknown_enums)
    return _activity_answer(
        call, 201, registration_id, call.store.create_activity(registration_id, activity, call.create_answers)
    )


def _content(
    call: GraphCall,
    method: str,
    registration_id: str,
    *,
    external_id: str | None = None,
    content_id: str | None = None,
) -> Answer:
    if method != "GET":
        raise method_not_allowed()
    store = call.store
    check_provider(store.providers.get(registration_id))
    if call.token.roles.isdisjoint(CONTENT_READ_ROLES):
        raise forbidden()
    if external_id is not None:
        content = store.content_by_external(registration_id, external_id)
    else:
        content = store.contents.get(content_id or "")
        owner = None if content is None else content.get("learningProviderId")
        if owner is not None and owner != registration_id:
            content = None
    if content is None:
        raise GraphError(404, "notFound", "The learning content requested doesn\u2019t exist.")
    entity = {k: v for k, v in content.items() if k != "learningProviderId"}
    return 200, _with_context(
        f"{call.graph_url}/$metadata#employeeExperience/learningProviders('{registration_id}')"
        "/learningContents/$entity",
        entity,
    )


# users ----------------------------------------------------------------------------------------------------
def _users(call: GraphCall, method: str, segments: list[str], query: Any) -> Answer:
    if len(segments) > 2:
        raise _segment_not_found(segments[2])
    if method != "GET":
        raise method_not_allowed()
    if call.token.roles.isdisjoint(USER_READ_ROLES):
        raise directory_forbidden()
    store = call.store
    select = query.get("$select")
    if len(segments) == 2:
        user = store.user_by_key(segments[1])
        if user is None:
            raise directory_not_found(segments[1])
        return 200, _with_context(f"{call.graph_url}/$metadata#users/$entity", _select(user, select))
    text = query.get("$filter")
    if text:
        seen: set[str] = set()
        users: list[dict[str, Any]] = []
        for prop, values in parse_eq_filter(text, _USER_FILTER_PROPS, "User"):
            for value in values:
                for user in store.users_matching(prop, value):
                    if user["id"] not in seen:
                        seen.add(user["id"])
                        users.append(user)
    else:
        users = list(store.users.values())
    top = query.get("$top")
    if top is not None:
        if not top.isdigit():
            raise bad_request(f"Invalid value '{top}' for $top query option found.")
        users = users[: int(top)]
    answer: dict[str, Any] = {"@odata.context": f"{call.graph_url}/$metadata#users"}
    if query.get("$count", "").lower() == "true":
        answer["@odata.count"] = len(users)
    answer["value"] = [_select(u, select) for u in users]
    return 200, answer


# servicePrincipals ----------------------------------------------------------------------------------------
def _service_principals(call: GraphCall, method: str, segments: list[str], body: Any) -> Answer:
    store = call.store
    head = segments[0]
    if head == "servicePrincipals":
        if len(segments) < 2:
            raise method_not_allowed()
        key, rest = segments[1], segments[2:]
        sp = store.service_principals.get(key)
    else:
        app_id = key_segment(head, "servicePrincipals", ("appId",))
        if app_id is None:
            raise _segment_not_found(head)
        key, rest = app_id, segments[1:]
        sp = store.service_principal_by_app_id(app_id)
    context = f"{call.graph_url}/$metadata#servicePrincipals"
    if rest and (len(rest) != 1 or rest[0] not in ("appRoleAssignments", "appRoleAssignedTo")):
        raise _segment_not_found(rest[0])
    if method == "POST" and rest == ["appRoleAssignedTo"]:
        if call.token.roles.isdisjoint(APP_ROLE_GRANT_ROLES):
            raise directory_forbidden()
        if sp is None:
            raise directory_not_found(key)
        assignment = store.grant_app_role(sp, None if body is INVALID_BODY else body)
        return 201, _with_context(f"{context}('{sp['id']}')/appRoleAssignedTo/$entity", assignment)
    if method != "GET":
        raise method_not_allowed()
    if call.token.roles.isdisjoint(APP_READ_ROLES):
        raise directory_forbidden()
    if sp is None:
        raise directory_not_found(key)
    if not rest:
        return 200, _with_context(f"{context}/$entity", sp)
    if rest[0] == "appRoleAssignments":  # the roles granted to this principal
        listed = store.assignments_of(sp["id"])
    else:  # the roles granted on this resource
        listed = list(store.app_role_assignments.get(sp["id"], []))
    return 200, {"@odata.context": f"{context}('{sp['id']}')/{rest[0]}", "value": listed}
