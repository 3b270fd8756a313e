"""The Graph reference page's examples (Update learningCourseActivity): its two request bodies verbatim, the PATCH
bodies the connector makes of them, and the ids they use, which the sandbox seeds. The one copy for devtools, the
sandbox, benchmarks and tests."""

import json
from typing import Any

REGISTRATION_ID = "01e8f81b-3060-4dec-acf0-0389665a0a38"
ASSIGNMENT_ID = "8ba2228a-e020-11ec-9d64-0242ac120003"
ASSIGNMENT_EXTERNAL_ID = "12a2228a-e020-11ec-9d64-0242ac120002"
#: The page gives both examples the same external id; one id cannot name an assignment and a self-initiated course at
#: once, so the sandbox's self-initiated course has its own.
SELF_INITIATED_ID = "9ca2228a-e020-11ec-9d64-0242ac120004"
SELF_INITIATED_EXTERNAL_ID = "13a2228a-e020-11ec-9d64-0242ac120002"
LEARNER_ID = "7ba2228a-e020-11ec-9d64-0242ac120002"
ASSIGNER_ID = "cea1684d-57dc-438d-a9d1-e666ec1a7f3d"
CONTENT_ID = "57baf9dc-e020-11ec-9d64-0242ac120002"

EXAMPLE_1_ASSIGNMENT = """{
  "@odata.type": "#microsoft.graph.learningAssignment",
  "assignedDateTime": "2021-05-11T22:57:17+00:00",
  "assignmentType": "required",
  "assignerUserId": "cea1684d-57dc-438d-a9d1-e666ec1a7f3d",
  "completedDateTime": null,
  "completionPercentage": 20,
  "learningProviderId": "01e8f81b-3060-4dec-acf0-0389665a0a38",
  "dueDateTime": {
    "dateTime": "2022-09-22T16:05:00.0000000",
    "timeZone": "UTC"
  },
  "externalcourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
  "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
  "learnerUserId": "7ba2228a-e020-11ec-9d64-0242ac120002",
  "notes": {
    "contentType": "text",
    "content": "required assignment added for user"
  },
  "status": "inProgress"
}"""

EXAMPLE_1_PATCH = {
    "@odata.type": "#microsoft.graph.learningAssignment",
    "assignedDateTime": "2021-05-11T22:57:17+00:00",
    "completedDateTime": None,
    "completionPercentage": 20,
    "dueDateTime": {"dateTime": "2022-09-22T16:05:00.0000000", "timeZone": "UTC"},
    "notes": {"content": "required assignment added for user", "contentType": "text"},
    "status": "inProgress",
}

EXAMPLE_2_SELF_INITIATED = """{
  "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
  "completedDateTime": null,
  "completionPercentage": 30,
  "externalcourseActivityId": "12a2228a-e020-11ec-9d64-0242ac120002",
  "learningContentId": "57baf9dc-e020-11ec-9d64-0242ac120002",
  "learningProviderId": "01e8f81b-3060-4dec-acf0-0389665a0a38",
  "startedDateTime": "2021-05-11T22:57:17+00:00",
  "status": "inProgress"
}"""

EXAMPLE_2_PATCH = {
    "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
    "completedDateTime": None,
    "completionPercentage": 30,
    "startedDateTime": "2021-05-11T22:57:17+00:00",
    "status": "inProgress",
}


def example_1() -> dict[str, Any]:
    """Example 1's body as a dict (a fresh one each time: callers change it)."""
    return dict(json.loads(EXAMPLE_1_ASSIGNMENT))


def example_2() -> dict[str, Any]:
    """Example 2's body as a dict, its external id pointed at the sandbox's self-initiated course."""
    return {**json.loads(EXAMPLE_2_SELF_INITIATED), "externalcourseActivityId": SELF_INITIATED_EXTERNAL_ID}
