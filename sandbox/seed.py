"""Seed data: the reference page's example tenant and the built-in service principals.

The example ids are the ones of the "Update learningCourseActivity" examples, so a request copied from the
page finds its activity. Graph app-role ids are Microsoft Graph's real ones (stable across tenants).
"""

from __future__ import annotations

from typing import Any, Final

from devtools import examples, platform_examples

from .rules import ASSIGNMENT, SELF_INITIATED

EXAMPLE_PROVIDER_ID: Final = examples.REGISTRATION_ID
EXAMPLE_ASSIGNMENT_ID: Final = examples.ASSIGNMENT_ID
EXAMPLE_ASSIGNMENT_EXTERNAL_ID: Final = examples.ASSIGNMENT_EXTERNAL_ID
EXAMPLE_SELF_INITIATED_ID: Final = examples.SELF_INITIATED_ID
EXAMPLE_SELF_INITIATED_EXTERNAL_ID: Final = examples.SELF_INITIATED_EXTERNAL_ID
EXAMPLE_LEARNER_ID: Final = examples.LEARNER_ID
EXAMPLE_ASSIGNER_ID: Final = examples.ASSIGNER_ID
EXAMPLE_CONTENT_ID: Final = examples.CONTENT_ID
EXAMPLE_CONTENT_EXTERNAL_ID: Final = "sandbox-course-101"

GRAPH_APP_ID: Final = "00000003-0000-0000-c000-000000000000"
# Object ids are per tenant in Entra; these are the sandbox tenant's (fake, stable).
GRAPH_SP_ID: Final = "5b0d3f3e-0000-4000-8000-00000000a001"
DEFAULT_MI_CLIENT_ID: Final = "5b0d3f3e-0000-4000-8000-00000000c11e"
DEFAULT_MI_PRINCIPAL_ID: Final = "5b0d3f3e-0000-4000-8000-00000000b001"
TENANT_ID: Final = "5b0d3f3e-0000-4000-8000-00000000e7a7"

# (value, id, displayName) of Microsoft Graph application permissions (appRoles) the product may need.
GRAPH_APP_ROLES: Final = (
    ("LearningAssignedCourse.ReadWrite.All", "236c1cbd-1187-427f-b0f5-b1852454973b", "Read and write all assignments"),
    (
        "LearningSelfInitiatedCourse.ReadWrite.All",
        "7654ed61-8965-4025-846a-0856ec02b5b0",
        "Read and write all self-initiated courses",
    ),
    ("User.Read.All", "df021288-bdef-4463-88db-98f22de89214", "Read all users' full profiles"),
    ("LearningContent.Read.All", "8740813e-d8aa-4204-860e-2a0f8f84dbc8", "Read all learning content"),
    ("LearningContent.ReadWrite.All", "444d6fcb-b738-41e5-b103-ac4f2a2628a3", "Manage all learning content"),
    ("Application.Read.All", "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30", "Read all applications"),
    ("Application.ReadWrite.All", "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9", "Read and write all applications"),
    ("AppRoleAssignment.ReadWrite.All", "06b708a9-e830-4db3-a914-8e69da51d44f", "Manage app permission grants"),
    ("Directory.Read.All", "7ab1d382-f21e-4acd-a863-ba3e13f7da61", "Read directory data"),
)


def graph_service_principal() -> dict[str, Any]:
    return {
        "id": GRAPH_SP_ID,
        "appId": GRAPH_APP_ID,
        "displayName": "Microsoft Graph",
        "servicePrincipalType": "Application",
        "appRoles": [
            {
                "allowedMemberTypes": ["Application"],
                "description": display_name,
                "displayName": display_name,
                "id": role_id,
                "isEnabled": True,
                "origin": "Application",
                "value": value,
            }
            for value, role_id, display_name in GRAPH_APP_ROLES
        ],
    }


def managed_identity_service_principal(client_id: str, principal_id: str) -> dict[str, Any]:
    return {
        "id": principal_id,
        "appId": client_id,
        "displayName": "sandbox-function-app",
        "servicePrincipalType": "ManagedIdentity",
        "appRoles": [],
    }


def example_seed() -> dict[str, list[dict[str, Any]]]:
    """The tenant of the reference page's examples (a fresh copy each call)."""
    return {
        "providers": [
            {
                "id": EXAMPLE_PROVIDER_ID,
                "displayName": "Contoso Learning (sandbox)",
                "isCourseActivitySyncEnabled": True,
                "loginUrl": "https://learning.contoso.example/login",
            }
        ],
        "users": [
            {
                "id": EXAMPLE_LEARNER_ID,
                "displayName": "Ada Learner",
                "userPrincipalName": "ada.learner@contoso.example",
                "mail": "Ada.Learner@contoso.example",
                "employeeId": "E1001",
            },
            {
                "id": EXAMPLE_ASSIGNER_ID,
                "displayName": "Grace Assigner",
                "userPrincipalName": "grace.assigner@contoso.example",
                "mail": "Grace.Assigner@contoso.example",
                "employeeId": "E1002",
            },
        ],
        "contents": [
            {
                "id": EXAMPLE_CONTENT_ID,
                "externalId": EXAMPLE_CONTENT_EXTERNAL_ID,
                "title": "Sandbox course 101",
                "contentWebUrl": "https://learning.contoso.example/courses/101",
                "languageTag": "en-us",
                "isActive": True,
                "learningProviderId": EXAMPLE_PROVIDER_ID,
            },
            *(  # what devtools.send's platform examples name (a Caliper IRI, a SCORM course id, a Canvas course)
                {
                    "id": content_id,
                    "externalId": external_id,
                    "title": f"Sandbox course {external_id}",
                    "isActive": True,
                    "learningProviderId": EXAMPLE_PROVIDER_ID,
                }
                for external_id, content_id in platform_examples.LOCAL_CONTENTS.items()
            ),
        ],
        "activities": [
            {
                "@odata.type": ASSIGNMENT,
                "id": EXAMPLE_ASSIGNMENT_ID,
                "externalcourseActivityId": EXAMPLE_ASSIGNMENT_EXTERNAL_ID,
                "learnerUserId": EXAMPLE_LEARNER_ID,
                "learningContentId": EXAMPLE_CONTENT_ID,
                "learningProviderId": EXAMPLE_PROVIDER_ID,
                "status": "notStarted",
                "assignmentType": "required",
                "assignerUserId": EXAMPLE_ASSIGNER_ID,
            },
            {
                "@odata.type": SELF_INITIATED,
                "id": EXAMPLE_SELF_INITIATED_ID,
                "externalcourseActivityId": EXAMPLE_SELF_INITIATED_EXTERNAL_ID,
                "learnerUserId": EXAMPLE_LEARNER_ID,
                "learningContentId": EXAMPLE_CONTENT_ID,
                "learningProviderId": EXAMPLE_PROVIDER_ID,
                "status": "inProgress",
            },
        ],
    }
