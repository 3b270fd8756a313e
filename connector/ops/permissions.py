"""Grants the managed identity exactly the Microsoft Graph application roles the enabled features need.

Azure RBAC cannot grant Graph permissions: they are app-role assignments on the Microsoft Graph service principal,
made by someone holding AppRoleAssignment.ReadWrite.All (e.g. a Privileged Role Administrator). Running it again
changes nothing and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from connector.adapters.graph import failure_from
from connector.domain.failures import GraphFailure

if TYPE_CHECKING:
    from connector.adapters.graph import GraphGateway

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
#: Updating assigned and self-initiated course activities.
BASE_ROLES = ("LearningAssignedCourse.ReadWrite.All", "LearningSelfInitiatedCourse.ReadWrite.All")
#: Creating a missing activity: find the learner and the content.
CREATE_MISSING_ROLES = ("User.Read.All", "LearningContent.Read.All")


@dataclass
class GrantResult:
    granted: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def roles_needed(create_missing: bool) -> list[str]:
    """The base roles, plus the learner and content lookups for providers that create missing activities."""
    return [*BASE_ROLES, *(CREATE_MISSING_ROLES if create_missing else ())]


async def grant_permissions(gateway: GraphGateway, principal_id: str, roles: list[str]) -> GrantResult:
    """Assigns each role that the principal (the identity's service principal object id) does not have yet."""
    from kiota_abstractions.api_error import APIError
    from msgraph.generated.models.app_role_assignment import AppRoleAssignment

    client = gateway.client
    try:
        graph = await client.service_principals_with_app_id(GRAPH_APP_ID).get()
        if graph is None or not graph.id:
            raise GraphFailure(404, "notFound", "the Microsoft Graph service principal was not found in this tenant")
        role_ids = {role.value: role.id for role in graph.app_roles or [] if role.value and role.id}
        unknown = [role for role in roles if role not in role_ids]
        if unknown:
            raise GraphFailure(400, "unknownRole", f"Microsoft Graph has no application role {', '.join(unknown)}")
        assignments = client.service_principals.by_service_principal_id(principal_id).app_role_assignments
        page = await assignments.get()
        held: set[UUID] = set()
        while page is not None:
            held.update(a.app_role_id for a in page.value or [] if str(a.resource_id) == graph.id and a.app_role_id)
            page = await assignments.with_url(page.odata_next_link).get() if page.odata_next_link else None
        result = GrantResult()
        for role in roles:
            role_id = role_ids[role]
            if role_id in held:
                result.existing.append(role)
                continue
            body = AppRoleAssignment(principal_id=UUID(principal_id), resource_id=UUID(graph.id), app_role_id=role_id)
            try:
                await client.service_principals.by_service_principal_id(graph.id).app_role_assigned_to.post(body)
            except APIError as exc:
                failure = failure_from(exc)
                if failure.status == 400 and "already exists" in failure.message:
                    result.existing.append(role)  # granted meanwhile, by another run
                    continue
                raise failure from None
            result.granted.append(role)
        return result
    except APIError as exc:
        raise failure_from(exc) from None
