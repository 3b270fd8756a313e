"""The LRS statements endpoint through the app's real functions, Azurite and the Graph sandbox."""

from __future__ import annotations

import json
import random
import uuid

import pytest

from devtools.examples import REGISTRATION_ID
from tests.support.functions import call_http_async
from tests.support.xapi import (
    CMI5_PROGRESS,
    CREATING_PROVIDER,
    ROTATED_SECRET,
    VIDEO_PROGRESS,
    XAPI_KEY,
    XAPI_SECRET,
    basic,
    progressed,
    statement,
)

SELF_ID = "9ca2228a-e020-11ec-9d64-0242ac120004"
ASSIGNMENT_ID = "8ba2228a-e020-11ec-9d64-0242ac120003"
ADA = "7ba2228a-e020-11ec-9d64-0242ac120002"
CONTENT = "57baf9dc-e020-11ec-9d64-0242ac120002"


async def lrs(
    method: str,
    body=None,
    *,
    registration: str = REGISTRATION_ID,
    params: dict | None = None,
    version: str | None = "1.0.3",
    auth: str | None = None,
    function: str = "xapi_statements",
):
    headers = {"content-type": "application/json", "authorization": auth or basic()}
    if version is not None:
        headers["x-experience-api-version"] = version
    return await call_http_async(
        function,
        method,
        {"registrationId": registration},
        body=b"" if body is None else json.dumps(body),
        headers=headers,
        params=params,
    )


def seed_self_initiated(graph, external_id: str) -> None:
    graph.seed(
        activities=[
            {
                "@odata.type": "#microsoft.graph.learningSelfInitiatedCourse",
                "id": SELF_ID,
                "externalcourseActivityId": external_id,
                "learningProviderId": REGISTRATION_ID,
                "learnerUserId": ADA,
                "learningContentId": CONTENT,
                "status": "inProgress",
            }
        ]
    )


# --- the LRS rules ---


async def test_about_lists_the_versions(connector):
    reply = await lrs("GET", function="xapi_about", version=None)
    assert reply.status == 200
    assert "1.0.3" in reply.body["version"]
    assert reply.headers["x-experience-api-version"] == "1.0.3"


@pytest.mark.parametrize(
    ("version", "status"), [(None, 400), ("2.0.0", 400), ("0.95", 400), ("1.0", 200), ("1.0.1", 200)]
)
async def test_the_version_header_is_required_and_must_be_1_0_x(connector, version, status):
    reply = await lrs("POST", statement("launched"), version=version)
    assert reply.status == status
    if status == 400:
        assert "X-Experience-API-Version" in reply.body["error"]["message"]
        assert await connector.count() == 0


async def test_basic_auth_rejects_a_wrong_secret_and_a_missing_one(connector):
    for auth in (basic(secret="wrong-secret-wrong-secret"), basic(key="someone-else"), "Bearer abc", "Basic !!"):
        reply = await lrs("POST", statement("launched"), auth=auth)
        assert reply.status == 401
        assert reply.headers["www-authenticate"].startswith("Basic")
    assert await connector.count() == 0


async def test_a_rotated_secret_is_accepted(connector):
    assert (await lrs("POST", statement("launched"), auth=basic(XAPI_KEY, ROTATED_SECRET))).status == 200


async def test_post_answers_the_ids_in_order_and_assigns_missing_ones(connector):
    given = statement("launched")
    anonymous = statement("initialized")
    del anonymous["id"]
    reply = await lrs("POST", [given, anonymous])
    assert reply.status == 200
    assert reply.body[0] == given["id"]
    assert uuid.UUID(reply.body[1])
    assert await connector.count() == 2


async def test_the_same_id_with_the_same_content_changes_nothing(connector):
    body = statement("completed")
    assert (await lrs("POST", body)).status == 200
    again = await lrs("POST", body)
    assert (again.status, again.body) == (200, [body["id"]])
    assert await connector.count() == 1


async def test_the_same_id_with_other_content_is_a_409_and_nothing_is_queued(connector):
    body = statement("launched")
    await lrs("POST", body)
    changed = {**body, "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"}}
    reply = await lrs("POST", [statement("launched"), changed])
    assert reply.status == 409
    assert await connector.count() == 1


async def test_duplicate_ids_in_one_batch_are_a_400_naming_both_statements(connector):
    body = statement("launched")
    completed = {**body, "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"}}
    reply = await lrs("POST", [body, statement("launched"), completed])
    assert reply.status == 400
    assert reply.body["error"]["message"] == (
        f"statement 2: id is invalid (statement 0 has the same id {body['id']}: ids must be unique in a batch)"
    )
    assert [(d["index"], d["target"]) for d in reply.body["error"]["details"]] == [(2, "id")]
    assert await connector.count() == 0


@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("verb", "every statement needs a verb with an id, an IRI such as http://adlnet.gov/expapi/verbs/completed"),
        ("actor", "every statement needs an actor identified by mbox, mbox_sha1sum, openid or account"),
        ("object", "every statement needs an object with an id, the activity's IRI"),
    ],
)
async def test_a_statement_without_a_required_part_says_which_statement_and_which_part(connector, field, rule):
    body = statement("launched")
    del body[field]
    reply = await lrs("POST", body)
    assert reply.status == 400
    error = reply.body["error"]
    assert error["message"] == f"statement 0: {field} is required ({rule})"
    assert error["details"] == [
        {"code": "badRequest", "message": f"Input field {field} is required", "target": field, "index": 0, "rule": rule}
    ]


async def test_one_bad_statement_rejects_the_batch_naming_index_and_field(connector):
    bad = statement("launched", actor={"name": "no identifier"})
    reply = await lrs("POST", [statement("launched"), bad])
    assert reply.status == 400
    assert reply.body["error"]["message"].startswith("statement 1: actor is invalid (needs an identifier")
    assert [(d["index"], d["target"]) for d in reply.body["error"]["details"]] == [(1, "actor")]
    assert await connector.count() == 0


async def test_put_stores_under_the_given_id(connector):
    body = statement("launched")
    statement_id = body.pop("id")
    reply = await lrs("PUT", body, params={"statementId": statement_id})
    assert (reply.status, reply.body) == (204, None)
    assert (await lrs("PUT", body, params={"statementId": statement_id})).status == 204
    assert await connector.count() == 1
    assert (await lrs("PUT", body)).status == 400
    other = {**body, "id": str(uuid.uuid4())}
    assert (await lrs("PUT", other, params={"statementId": statement_id})).status == 400


async def test_get_on_statements_says_this_endpoint_only_receives(connector):
    reply = await lrs("GET")
    assert reply.status == 405
    assert "only receives" in reply.body["error"]["message"]


# --- statements reach Graph ---


async def test_a_cmi5_session_posted_in_shuffled_order_completes_the_activity(connector, graph):
    registration = str(uuid.uuid4())
    seed_self_initiated(graph, registration)
    times = [f"2026-11-20T10:0{minute}:00Z" for minute in range(7)]
    session = [
        statement("launched", timestamp=times[0], registration=registration),
        statement("initialized", timestamp=times[1], registration=registration),
        progressed(25, timestamp=times[2], registration=registration),
        progressed(50, timestamp=times[3], registration=registration),
        progressed(75, timestamp=times[4], registration=registration),
        statement("completed", timestamp=times[5], registration=registration, result={"completion": True}),
        statement("terminated", timestamp=times[6], registration=registration),
    ]
    random.Random(4).shuffle(session)
    for body in session:
        assert (await lrs("POST", body)).status == 200
    runs = await connector.drain()
    assert [r.error for r in runs] == [None] * len(runs)
    assert [r.poison for r in runs] == [None] * len(runs)
    activity = graph.activity(SELF_ID)
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
    assert activity["startedDateTime"].startswith("2026-11-20T10:00:00")
    assert activity["completedDateTime"].startswith("2026-11-20T10:05:00")


async def test_statements_about_an_assignment_patch_it_as_an_assignment(connector, graph):
    registration = "12a2228a-e020-11ec-9d64-0242ac120002"  # the example assignment's external id
    await lrs("POST", [statement("launched", registration=registration), progressed(40, registration=registration)])
    await connector.drain()
    bodies = [p["body"] for p in connector.patches()]
    assert bodies[-1] == {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "status": "inProgress",
        "completionPercentage": 40,
    }
    assert graph.activity(ASSIGNMENT_ID)["completionPercentage"] == 40


async def test_udemy_like_video_progress_then_completion(connector, graph):
    registration = str(uuid.uuid4())
    seed_self_initiated(graph, registration)
    video = statement(
        "https://w3id.org/xapi/video/verbs/played",
        registration=registration,
        result={"extensions": {VIDEO_PROGRESS: 0.3}},
    )
    await lrs("POST", video)
    await connector.drain()
    assert graph.activity(SELF_ID)["completionPercentage"] == 30
    await lrs("POST", statement("completed", registration=registration))
    await connector.drain()
    assert graph.activity(SELF_ID)["status"] == "completed"


async def test_edx_like_integers_and_float_progress(connector, graph):
    registration = str(uuid.uuid4())
    seed_self_initiated(graph, registration)
    await lrs(
        "POST",
        statement(
            "progressed", registration=registration, result={"completion": 0, "extensions": {CMI5_PROGRESS: 0.6}}
        ),
    )
    await connector.drain()
    assert graph.activity(SELF_ID)["completionPercentage"] == 60
    await lrs("POST", statement("experienced", registration=registration, result={"completion": 1}))
    await connector.drain()
    assert graph.activity(SELF_ID)["status"] == "completed"


# --- create when missing ---


def enable_creating_provider(graph) -> None:
    graph.seed(
        providers=[{"id": CREATING_PROVIDER, "displayName": "LMS", "isCourseActivitySyncEnabled": True}],
        contents=[{"id": "content-101", "externalId": "course-101", "learningProviderId": CREATING_PROVIDER}],
    )


async def test_a_missing_activity_is_created_for_the_learner_and_content(connector, graph):
    enable_creating_provider(graph)
    await lrs("POST", statement("launched"), registration=CREATING_PROVIDER)
    await lrs("POST", progressed(35), registration=CREATING_PROVIDER)
    runs = await connector.drain()
    assert [(r.error, r.poison) for r in runs] == [(None, None)] * 2
    (created,) = graph.activities(CREATING_PROVIDER)
    assert created["@odata.type"] == "#microsoft.graph.learningSelfInitiatedCourse"
    assert (created["learnerUserId"], created["learningContentId"]) == (ADA, "content-101")
    assert created["externalcourseActivityId"].startswith("xapi-")
    assert (created["status"], created["completionPercentage"]) == ("inProgress", 35)
    assert len(graph.requests(method="POST")) == 1
    assert len(graph.requests(method="GET", path_contains="/users")) == 1  # the learner lookup is cached


async def test_a_pluralsight_like_account_is_found_by_employee_id(connector, graph):
    enable_creating_provider(graph)
    account = {"account": {"name": "E1001"}}  # no homePage
    await lrs("POST", statement("completed", actor=account), registration=CREATING_PROVIDER)
    await connector.drain()
    (created,) = graph.activities(CREATING_PROVIDER)
    assert (created["learnerUserId"], created["status"]) == (ADA, "completed")


async def test_an_unknown_learner_is_dead_lettered_with_the_reason(connector, graph):
    enable_creating_provider(graph)
    await lrs(
        "POST", statement("launched", actor={"mbox": "mailto:nobody@contoso.example"}), registration=CREATING_PROVIDER
    )
    (run,) = await connector.drain()
    assert run.error is None
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["status"], reason["code"]) == (404, "learnerNotFound")
    assert "nobody@" not in reason["message"]
    assert graph.activities(CREATING_PROVIDER) == []


async def test_an_unknown_content_is_dead_lettered_with_the_reason(connector, graph, caplog):
    enable_creating_provider(graph)
    body = statement("launched", activity="https://lms.example.com/courses/unknown-course")
    reply = await lrs("POST", body, registration=CREATING_PROVIDER)
    (run,) = await connector.drain()
    assert json.loads(run.poison)["deadLetter"]["code"] == "contentNotFound"
    (logged,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "dead-lettered" in r.getMessage()]
    (statement_id,) = reply.body
    assert f"(statement {statement_id})" in logged
    assert "webhook None" not in logged


async def test_an_unknown_provider_is_a_401_so_registration_ids_cannot_be_probed(connector):
    reply = await lrs("POST", statement("launched"), registration="00000000-0000-0000-0000-000000000000")
    assert reply.status == 401


async def test_deeply_nested_json_is_a_400(connector):
    reply = await call_http_async(
        "xapi_statements",
        "POST",
        {"registrationId": REGISTRATION_ID},
        body="[" * 990 + "]" * 990,
        headers={"authorization": basic(), "x-experience-api-version": "1.0.3", "content-type": "application/json"},
    )
    assert reply.status == 400


async def test_a_registration_that_is_not_a_uuid_is_named(connector):
    reply = await lrs("POST", statement("launched", registration="x" * 1000))
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["target"] == "context.registration"


async def test_a_put_statement_id_that_is_not_a_uuid_is_named(connector):
    body = statement("launched")
    del body["id"]
    reply = await lrs("PUT", body, params={"statementId": "x"})
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["target"] == "statementId"


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_chunked_request_without_a_body_is_411_asking_for_content_length(connector, method):
    reply = await call_http_async(
        "xapi_statements",
        method,
        {"registrationId": REGISTRATION_ID},
        body=b"",
        headers={
            "authorization": basic(),
            "x-experience-api-version": "1.0.3",
            "content-type": "application/json",
            "transfer-encoding": "chunked",
        },
        params={"statementId": str(uuid.uuid4())} if method == "PUT" else None,
    )
    assert reply.status == 411
    assert "Content-Length" in reply.body["error"]["message"]
    assert reply.headers["x-experience-api-version"] == "1.0.3"
    assert await connector.count() == 0


async def test_a_40000_character_activity_iri_is_a_400_and_nothing_is_queued(connector):
    """The ReDoS probe's statement: refused at intake, so no provider pattern ever runs on it."""
    long_iri = "https://lms.example.com/courses/" + "a" * 40_000 + "/"
    reply = await lrs("POST", statement("launched", activity=long_iri), registration=CREATING_PROVIDER)
    assert reply.status == 400
    (detail,) = reply.body["error"]["details"]
    assert (detail["target"], detail["rule"]) == ("object.id", "must be at most 2048 characters")
    assert await connector.count() == 0


async def test_a_statement_too_large_for_the_queue_rejects_the_whole_batch_before_any_is_queued(connector, monkeypatch):
    """Statements are capped so that none reaches the queue's limit today; the limit is lowered here to show that
    every message is measured before the first is queued (a 413, as the webhook answers)."""
    monkeypatch.setattr("connector.app.replies.MAX_MESSAGE_BYTES", 1500)
    small = statement("launched")
    large = statement("https://lms.example.com/verbs/" + "v" * 1500 + "/progressed")
    reply = await lrs("POST", [small, large])
    assert reply.status == 413
    assert reply.body["error"]["message"].startswith("statement 1 is too large for the queue")
    assert await connector.count() == 0
    assert (await lrs("POST", small)).status == 200  # nothing of the refused batch was recorded either
    assert await connector.count() == 1


async def test_a_70_kb_actor_name_never_leaves_half_a_batch_queued(connector):
    named = statement("launched", actor={"name": "N" * 70_000, "mbox": "mailto:ada.learner@contoso.example"})
    reply = await lrs("POST", [statement("launched"), named])
    assert reply.status == 200
    assert await connector.count() == 2


async def test_a_message_carries_no_personal_data_when_the_provider_creates_nothing(connector):
    await lrs("POST", statement("launched"))
    (message,) = await connector.messages()
    assert "xapi" in json.loads(message)
    assert "ada" not in message.lower()
    assert "actor" not in json.loads(message)["xapi"]


@pytest.mark.parametrize(
    ("actor", "carried"),
    [
        (
            {"objectType": "Agent", "name": "Ada", "mbox": "mailto:ada.learner@contoso.example"},
            {"mbox": "mailto:ada.learner@contoso.example"},
        ),
        (
            {"name": "Ada", "account": {"homePage": "https://sso.example", "name": "E1001"}},
            {"account": {"name": "E1001"}},
        ),
        ({"name": "Ada", "mbox_sha1sum": "f" * 40}, {}),
    ],
)
async def test_a_creating_provider_gets_only_what_finds_the_learner_and_never_a_name(connector, actor, carried):
    await lrs("POST", statement("launched", actor=actor), registration=CREATING_PROVIDER)
    (message,) = await connector.messages()
    assert json.loads(message)["xapi"]["actor"] == carried
    assert "Ada" not in message


async def test_a_rejected_registration_id_is_logged_escaped_on_one_line(connector, caplog):
    caplog.set_level("WARNING", logger="connector.app.lrs")
    reply = await lrs("POST", statement("launched"), registration="x\n12:00:00 ERROR forged line")
    assert reply.status == 401
    (line,) = [r.getMessage() for r in caplog.records if "rejected (401)" in r.getMessage()]
    assert "\n" not in line
    assert "x\\n12:00:00 ERROR forged line" in line


async def test_anonymous_rejections_are_sampled_and_the_next_line_counts_the_rest(connector, caplog, monkeypatch):
    from connector.app.logsafe import LogSampler

    clock = [0.0]
    monkeypatch.setattr("connector.app.lrs._ANONYMOUS_REJECTIONS", LogSampler(3, 60.0, lambda: clock[0]))
    caplog.set_level("WARNING", logger="connector.app.lrs")
    for _ in range(10):
        assert (await lrs("POST", statement("launched"), auth=basic(secret="w" * 43))).status == 401
    lines = [r.getMessage() for r in caplog.records if "rejected (401)" in r.getMessage()]
    assert len(lines) == 3
    clock[0] = 60.0
    await lrs("POST", statement("launched"), auth=basic(secret="w" * 43))
    lines = [r.getMessage() for r in caplog.records if "rejected (401)" in r.getMessage()]
    assert len(lines) == 4
    assert lines[-1].endswith("(7 more like it not logged)")


async def test_every_401_compares_the_credential_whether_the_provider_exists_or_not(connector, monkeypatch):
    """Timing says nothing about which registrationIds exist: the presented key and secret are compared in constant
    time against a credential, a stand-in one for an unknown provider or one without LRS credentials. Observed
    through hmac.compare_digest: a timed test could not be trusted on a shared machine."""
    import hmac

    from tests.support.signing import SECRET

    webhook_only = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
    providers = {
        REGISTRATION_ID: {"xapiCredentials": [{"key": XAPI_KEY, "secret": XAPI_SECRET}]},
        webhook_only: {"webhookSecrets": [SECRET]},
    }
    monkeypatch.setenv("CONNECTOR_PROVIDERS", json.dumps(providers))
    compared: list[bytes] = []
    compare = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(a) or compare(a, b))
    seen = []
    for registration in (REGISTRATION_ID, webhook_only, "00000000-0000-0000-0000-000000000000"):
        compared.clear()
        reply = await lrs("POST", statement("launched"), registration=registration, auth=basic(secret="w" * 43))
        assert reply.status == 401
        seen.append(list(compared))
    assert seen == [[XAPI_KEY.encode(), b"w" * 43]] * 3


async def test_a_statement_on_storage_without_the_queue_yet_is_queued_not_a_500(connector):
    """A new Azurite has no queue until the webhook's output binding makes one; the LRS path sends by itself."""
    async with connector.queue() as queue:
        await queue.delete_queue()
    reply = await lrs("POST", progressed(40, registration="12a2228a-e020-11ec-9d64-0242ac120002"))
    assert reply.status == 200, reply.body
    assert await connector.count() == 1


async def test_an_xapi_start_on_an_assignment_does_not_make_every_later_no_op_a_patch(connector, graph):
    """An assignment has no startedDateTime in Graph: comparing it would never agree, and each no-op would PATCH."""
    registration = "12a2228a-e020-11ec-9d64-0242ac120002"  # the seeded assignment's external id
    assert (await lrs("POST", statement("launched", registration=registration))).status == 200
    await connector.drain()
    assert [p["body"].get("startedDateTime") for p in connector.patches()] == [None]
    graph.clear_requests()
    again = {"@odata.type": "#microsoft.graph.learningAssignment", "externalcourseActivityId": registration}
    await connector.deliver(REGISTRATION_ID, {**again, "status": "inProgress"})
    assert connector.patches() == []
