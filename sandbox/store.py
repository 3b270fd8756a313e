"""One in-memory tenant: providers, activities, users, contents and service principals.

Plain dicts with the indexes the routes need (activity by provider and external id, users by mail/UPN/
employeeId, contents by provider and external id), so every Graph lookup is O(1). Single-threaded: only the
event loop touches it.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from .rules import (
    ACTIVITY_TYPES,
    MSG_CONTENT_PROVIDER_MISMATCH,
    PROPERTIES,
    CreateAnswers,
    GraphError,
)
from .seed import graph_service_principal, managed_identity_service_principal


class SeedError(ValueError):
    """A seed document the store cannot take (answered as a 400 by the admin API)."""


def _require_str(item: dict[str, Any], key: str, kind: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise SeedError(f"{kind} needs a non-empty string {key!r}: {item!r}")
    return value


class Store:
    """Everything Graph would know about the tenant."""

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.providers: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, dict[str, Any]] = {}
        self._activity_by_external: dict[tuple[str, str], str] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self._users_by_upn: dict[str, str] = {}
        self._users_by_mail: dict[str, list[str]] = {}
        self._users_by_employee_id: dict[str, list[str]] = {}
        self.contents: dict[str, dict[str, Any]] = {}
        self._content_by_external: dict[tuple[str | None, str], str] = {}
        self.service_principals: dict[str, dict[str, Any]] = {}
        self._sp_by_app_id: dict[str, str] = {}
        self.app_role_assignments: dict[str, list[dict[str, Any]]] = {}

    def reset(self, mi_client_id: str | None = None, mi_principal_id: str | None = None) -> None:
        """Empty the tenant, keeping its built-in service principals: Microsoft Graph, and the managed identity
        in the identity's own tenant."""
        self._clear()
        self.put_service_principal(graph_service_principal())
        if mi_client_id is not None and mi_principal_id is not None:
            self.put_service_principal(managed_identity_service_principal(mi_client_id, mi_principal_id))

    # providers -------------------------------------------------------------------------------------------
    def put_provider(self, registration_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        provider = self.providers.get(registration_id) or {
            "id": registration_id,
            "displayName": "Sandbox learning provider",
            "isCourseActivitySyncEnabled": True,
            "loginUrl": None,
            "longLogoWebDarkUrl": None,
            "longLogoWebLightUrl": None,
            "squareLogoWebDarkUrl": None,
            "squareLogoWebLightUrl": None,
        }
        provider.update({k: v for k, v in fields.items() if k != "id"})
        if not isinstance(provider["isCourseActivitySyncEnabled"], bool):
            raise SeedError("isCourseActivitySyncEnabled must be a boolean")
        self.providers[registration_id] = provider
        return provider

    # activities ------------------------------------------------------------------------------------------
    def activity_by_external(self, registration_id: str, external_id: str) -> dict[str, Any] | None:
        activity_id = self._activity_by_external.get((registration_id, external_id))
        return None if activity_id is None else self.activities[activity_id]

    def add_activity(self, item: dict[str, Any], *, allow_replace: bool) -> dict[str, Any]:
        """Store an activity given in Graph's shape (either spelling of the external id); fills missing
        properties with null. ``allow_replace`` lets a seed overwrite an activity with the same id."""
        item = dict(item)
        odata_type = item.get("@odata.type")
        if odata_type not in ACTIVITY_TYPES:
            raise SeedError(f"activity needs @odata.type in {ACTIVITY_TYPES}: {item!r}")
        if "externalCourseActivityId" in item:
            item.setdefault("externalcourseActivityId", item["externalCourseActivityId"])
            del item["externalCourseActivityId"]
        provider_id = _require_str(item, "learningProviderId", "activity")
        external_id = _require_str(item, "externalcourseActivityId", "activity")
        unknown = set(item) - set(PROPERTIES[odata_type]) - {"@odata.type"}
        if unknown:
            raise SeedError(f"activity has properties its type does not have: {sorted(unknown)}")
        activity_id = item.get("id") or f"{item.get('learnerUserId') or 'learner'}:{uuid.uuid4()}"
        existing_id = self._activity_by_external.get((provider_id, external_id))
        if existing_id is not None and existing_id != activity_id:
            raise SeedError(f"provider {provider_id} already has externalcourseActivityId {external_id!r}")
        if activity_id in self.activities and not allow_replace:
            raise SeedError(f"activity id {activity_id!r} exists")
        self.delete_activity(activity_id)
        activity: dict[str, Any] = {"@odata.type": odata_type}
        for name in PROPERTIES[odata_type]:
            activity[name] = copy.deepcopy(item.get(name))
        activity["id"] = activity_id
        self.activities[activity_id] = activity
        self._activity_by_external[(provider_id, external_id)] = activity_id
        return activity

    def create_activity(self, registration_id: str, activity: dict[str, Any], answers: CreateAnswers) -> dict[str, Any]:
        """The reference checks of a Graph POST: learner, assigner and content known (each checked only while
        the tenant has any users, resp. contents), content of this provider, no duplicate external id."""
        for field in ("learnerUserId", "assignerUserId"):
            user_id = activity.get(field)
            if user_id is not None and self.users and user_id not in self.users:
                raise answers.missing(field)
        content_id = activity["learningContentId"]
        if self.contents:
            content = self.contents.get(content_id)
            if content is None:
                raise answers.missing("learningContentId")
            owner = content.get("learningProviderId")
            if owner is not None and owner != registration_id:
                raise GraphError(403, "Forbidden", MSG_CONTENT_PROVIDER_MISMATCH)
        external_id = activity["externalcourseActivityId"]
        if (registration_id, external_id) in self._activity_by_external:
            raise answers.duplicate(external_id)
        activity_id = f"{activity['learnerUserId']}:{uuid.uuid4()}"
        stored = {"@odata.type": activity["@odata.type"], "id": activity_id}
        stored.update((k, v) for k, v in activity.items() if k != "@odata.type")
        self.activities[activity_id] = stored
        self._activity_by_external[(registration_id, external_id)] = activity_id
        return stored

    def delete_activity(self, activity_id: str) -> bool:
        activity = self.activities.pop(activity_id, None)
        if activity is None:
            return False
        key = (activity["learningProviderId"], activity["externalcourseActivityId"])
        if self._activity_by_external.get(key) == activity_id:
            del self._activity_by_external[key]
        return True

    # users -----------------------------------------------------------------------------------------------
    def add_user(self, item: dict[str, Any]) -> dict[str, Any]:
        user_id = _require_str(item, "id", "user")
        if user_id in self.users:
            self._unindex_user(self.users[user_id])
        user = {
            "id": user_id,
            "displayName": item.get("displayName"),
            "userPrincipalName": item.get("userPrincipalName"),
            "mail": item.get("mail"),
            "employeeId": item.get("employeeId"),
        }
        user.update({k: v for k, v in item.items() if k not in user})
        self.users[user_id] = user
        if isinstance(user["userPrincipalName"], str):
            self._users_by_upn[user["userPrincipalName"].lower()] = user_id
        if isinstance(user["mail"], str):
            self._users_by_mail.setdefault(user["mail"].lower(), []).append(user_id)
        if isinstance(user["employeeId"], str):
            self._users_by_employee_id.setdefault(user["employeeId"], []).append(user_id)
        return user

    def _unindex_user(self, user: dict[str, Any]) -> None:
        upn, mail, employee_id = user.get("userPrincipalName"), user.get("mail"), user.get("employeeId")
        if isinstance(upn, str) and self._users_by_upn.get(upn.lower()) == user["id"]:
            del self._users_by_upn[upn.lower()]
        if isinstance(mail, str):
            self._users_by_mail.get(mail.lower(), []).remove(user["id"])
        if isinstance(employee_id, str):
            self._users_by_employee_id.get(employee_id, []).remove(user["id"])

    def user_by_key(self, key: str) -> dict[str, Any] | None:
        """``/users/{id | userPrincipalName}``: ids exactly, UPNs case-insensitively."""
        user = self.users.get(key)
        if user is None:
            user_id = self._users_by_upn.get(key.lower())
            user = None if user_id is None else self.users[user_id]
        return user

    def users_matching(self, prop: str, value: str) -> list[dict[str, Any]]:
        if prop == "mail":
            ids = self._users_by_mail.get(value.lower(), [])
        elif prop == "userPrincipalName":
            upn_id = self._users_by_upn.get(value.lower())
            ids = [] if upn_id is None else [upn_id]
        elif prop == "employeeId":
            ids = self._users_by_employee_id.get(value, [])
        else:  # "id"
            ids = [value] if value in self.users else []
        return [self.users[i] for i in ids]

    # contents --------------------------------------------------------------------------------------------
    def add_content(self, item: dict[str, Any]) -> dict[str, Any]:
        content_id = _require_str(item, "id", "content")
        external_id = _require_str(item, "externalId", "content")
        provider_id = item.get("learningProviderId")
        old = self.contents.get(content_id)
        if old is not None:
            self._content_by_external.pop((old.get("learningProviderId"), old["externalId"]), None)
        content = {"id": content_id, "externalId": external_id, "title": item.get("title")}
        content.update({k: v for k, v in item.items() if k not in content})
        self.contents[content_id] = content
        self._content_by_external[(provider_id, external_id)] = content_id
        return content

    def content_by_external(self, registration_id: str, external_id: str) -> dict[str, Any] | None:
        """A content of that provider; contents seeded without ``learningProviderId`` belong to every provider."""
        content_id = self._content_by_external.get((registration_id, external_id))
        if content_id is None:
            content_id = self._content_by_external.get((None, external_id))
        return None if content_id is None else self.contents[content_id]

    # service principals ----------------------------------------------------------------------------------
    def put_service_principal(self, item: dict[str, Any]) -> dict[str, Any]:
        sp_id = _require_str(item, "id", "servicePrincipal")
        app_id = _require_str(item, "appId", "servicePrincipal")
        old = self.service_principals.get(sp_id)
        if old is not None:
            self._sp_by_app_id.pop(old["appId"], None)
        sp = {
            "id": sp_id,
            "appId": app_id,
            "displayName": item.get("displayName"),
            "servicePrincipalType": item.get("servicePrincipalType", "Application"),
            "accountEnabled": item.get("accountEnabled", True),
            "appRoles": copy.deepcopy(item.get("appRoles", [])),
        }
        sp.update({k: copy.deepcopy(v) for k, v in item.items() if k not in sp})
        self.service_principals[sp_id] = sp
        self._sp_by_app_id[app_id] = sp_id
        return sp

    def remove_service_principal(self, sp_id: str) -> None:
        sp = self.service_principals.pop(sp_id, None)
        if sp is not None and self._sp_by_app_id.get(sp["appId"]) == sp_id:
            del self._sp_by_app_id[sp["appId"]]
        self.app_role_assignments.pop(sp_id, None)

    def service_principal_by_app_id(self, app_id: str) -> dict[str, Any] | None:
        sp_id = self._sp_by_app_id.get(app_id)
        return None if sp_id is None else self.service_principals[sp_id]

    def grant_app_role(self, resource: dict[str, Any], body: Any) -> dict[str, Any]:
        """``POST /servicePrincipals/{id}/appRoleAssignedTo`` with Graph's directory errors."""

        def bad(message: str) -> GraphError:
            return GraphError(400, "Request_BadRequest", message)

        if not isinstance(body, dict):
            raise bad("Invalid request body.")
        principal_id, resource_id, app_role_id = body.get("principalId"), body.get("resourceId"), body.get("appRoleId")
        if resource_id != resource["id"]:
            raise bad("Invalid value specified for property 'resourceId' of resource 'AppRoleAssignment'.")
        principal = self.service_principals.get(principal_id) if isinstance(principal_id, str) else None
        if principal is None:
            raise bad("Invalid value specified for property 'principalId' of resource 'AppRoleAssignment'.")
        if not any(role.get("id") == app_role_id for role in resource.get("appRoles", [])):
            raise bad(f"Permission being assigned was not found on application '{resource['appId']}'.")
        assignments = self.app_role_assignments.setdefault(resource["id"], [])
        if any(a["principalId"] == principal_id and a["appRoleId"] == app_role_id for a in assignments):
            raise bad("Permission being assigned already exists on the object")
        assignment = {
            "id": uuid.uuid4().hex,
            "deletedDateTime": None,
            "appRoleId": app_role_id,
            "createdDateTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "principalDisplayName": principal.get("displayName"),
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
            "resourceDisplayName": resource.get("displayName"),
            "resourceId": resource["id"],
        }
        assignments.append(assignment)
        return assignment

    def assignments_of(self, principal_id: str) -> list[dict[str, Any]]:
        """``GET /servicePrincipals/{id}/appRoleAssignments``: the roles granted to a principal, on any resource."""
        return [a for group in self.app_role_assignments.values() for a in group if a["principalId"] == principal_id]

    def granted_role_values(self, principal_id: str) -> set[str]:
        """The values (e.g. LearningAssignedCourse.ReadWrite.All) of the app roles granted to a principal."""
        values: set[str] = set()
        for assignment in self.assignments_of(principal_id):
            resource = self.service_principals.get(assignment["resourceId"], {})
            values.update(r["value"] for r in resource.get("appRoles", []) if r.get("id") == assignment["appRoleId"])
        return values

    # seeding ---------------------------------------------------------------------------------------------
    def seed(self, document: Any) -> dict[str, list[dict[str, Any]]]:
        """Load ``{"providers", "activities", "users", "contents", "servicePrincipals"}`` (each optional);
        returns what was stored."""
        if not isinstance(document, dict):
            raise SeedError("seed document must be a JSON object")
        unknown = set(document) - {"providers", "activities", "users", "contents", "servicePrincipals"}
        if unknown:
            raise SeedError(f"unknown seed keys: {sorted(unknown)}")
        for key, value in document.items():
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise SeedError(f"{key} must be a list of objects")
        stored: dict[str, list[dict[str, Any]]] = {}
        stored["providers"] = [
            self.put_provider(_require_str(p, "id", "provider"), p) for p in document.get("providers", [])
        ]
        stored["users"] = [self.add_user(u) for u in document.get("users", [])]
        stored["contents"] = [self.add_content(c) for c in document.get("contents", [])]
        stored["servicePrincipals"] = [self.put_service_principal(s) for s in document.get("servicePrincipals", [])]
        stored["activities"] = [self.add_activity(a, allow_replace=True) for a in document.get("activities", [])]
        return stored

    def snapshot(self) -> dict[str, Any]:
        return {
            "providers": list(self.providers.values()),
            "activities": list(self.activities.values()),
            "users": list(self.users.values()),
            "contents": list(self.contents.values()),
            "servicePrincipals": list(self.service_principals.values()),
            "appRoleAssignments": [a for group in self.app_role_assignments.values() for a in group],
        }
