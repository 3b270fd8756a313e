"""The two request bodies of the Graph reference page (Update learningCourseActivity), verbatim."""

REGISTRATION_ID = "01e8f81b-3060-4dec-acf0-0389665a0a38"
ASSIGNMENT_ID = "8ba2228a-e020-11ec-9d64-0242ac120003"
ASSIGNMENT_EXTERNAL_ID = "12a2228a-e020-11ec-9d64-0242ac120002"

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
