"""The IMS Caliper endpoint through the app's real functions, Azurite and the Graph sandbox: a sensor's envelopes
in, learningCourseActivity updates out."""

from __future__ import annotations

import asyncio
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.domain.envelope import POISON_QUEUE_NAME
from devtools.examples import REGISTRATION_ID
from tests.support.formats import (
    LEARNER_EMAIL,
    V1P1,
    attempt,
    caliper_event,
    course,
    envelope,
    json_values,
    person,
    units_completed,
)
from tests.support.functions import call_http_async
from tests.support.platforms import (
    CALIPER_KEY,
    PLATFORM_PROVIDER,
    ROTATED_CALIPER_KEY,
    post,
    seed_platform_provider,
    with_platform_provider,
)

DANA = "0d4a0000-0000-4000-8000-0000000000d1"
AVERY = "0a7e0000-0000-4000-8000-0000000000a2"
MEDIA = "https://learn.fabrikam.example/courses/sec-101/videos/intro"


@pytest.fixture(autouse=True)
def platform_provider(connector, monkeypatch):
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider())
    seed_platform_provider(
        connector.graph, "sec-101", users=[{"id": DANA, "userPrincipalName": LEARNER_EMAIL, "mail": LEARNER_EMAIL}]
    )


async def caliper(body, *, registration: str = PLATFORM_PROVIDER, key: str | None = f"Bearer {CALIPER_KEY}", **headers):
    sent = {"content-type": "application/json", **headers}
    if key is not None:
        sent["authorization"] = key
    return await post("caliper_events", registration, body, sent)


def session() -> list[dict]:
    """A learner's first touch to completion on one course, one envelope per event (Moodle's immediate mode)."""
    at = [f"2025-03-05T09:{minute:02d}:00.000Z" for minute in range(0, 60, 5)]
    media = {"id": MEDIA, "type": "VideoObject", "duration": "PT10M"}
    events = [
        caliper_event("ViewEvent", "Viewed", "2025-03-05T08:55:00.000Z", 1),  # the first touch
        caliper_event("SessionEvent", "LoggedIn", at[0], 2, object="https://learn.fabrikam.example"),
        caliper_event("AssignableEvent", "Started", at[2], 3, generated=attempt("2025-03-05T09:02:15.000Z")),
        caliper_event(
            "MediaEvent", "Paused", at[3], 4, object=media, target={"type": "MediaLocation", "currentTime": "PT5M"}
        ),
        caliper_event("ToolUseEvent", "Used", at[4], 5, generated=units_completed(3, 10)),
        caliper_event(
            "AssignableEvent",
            "Completed",
            at[6],
            6,
            generated=attempt("2025-03-05T09:02:15.000Z", "2025-03-05T09:28:41.000Z"),
        ),
        caliper_event("SessionEvent", "LoggedOut", at[7], 7, object="https://learn.fabrikam.example"),
    ]
    return [envelope(event) for event in events]


async def poison(connector) -> list[dict]:
    return [json.loads(m) for m in await connector.messages(POISON_QUEUE_NAME)]


# --- a session reaches Graph ---


async def test_a_session_posted_in_shuffled_order_creates_and_completes_the_activity(connector, graph):
    bodies = session()
    random.Random(14).shuffle(bodies)
    for body in bodies:
        reply = await caliper(body)
        assert (reply.status, reply.body) == (200, None)
    assert await connector.count() == 4  # the sessions, and the video (not a course), carry no progress: skipped
    runs = await connector.drain()
    assert [(r.error, r.poison) for r in runs] == [(None, None)] * 4
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert activity["@odata.type"] == "#microsoft.graph.learningSelfInitiatedCourse"
    assert (activity["learnerUserId"], activity["learningContentId"]) == (DANA, "content-sec-101")
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
    assert activity["startedDateTime"].startswith("2025-03-05T08:55:00")  # the first touch
    assert activity["completedDateTime"].startswith("2025-03-05T09:28:41")  # the attempt's end
    assert activity["externalcourseActivityId"].startswith("act-")
    assert len(graph.requests(method="POST")) == 1


async def test_redelivering_every_envelope_sends_graph_nothing_more(connector, graph):
    bodies = session()
    for body in bodies:
        await caliper(body)
    await connector.drain()
    sent = len(graph.requests(method="PATCH")) + len(graph.requests(method="POST"))
    for body in [*bodies, *reversed(bodies)]:  # a sender's retries, in any order
        assert (await caliper(body)).status == 200
    runs = await connector.drain()
    assert {r.poison for r in runs} == {None}
    assert len(graph.requests(method="PATCH")) + len(graph.requests(method="POST")) == sent


async def test_an_envelope_of_many_events_is_one_request_and_mixes_describes(connector, graph):
    started = caliper_event("AssignableEvent", "Started", "2025-03-05T09:02:00Z", 1)
    started["object"] = course()["id"]  # the object by IRI, described once in the envelope
    completed = caliper_event("AssignableEvent", "Completed", "2025-03-05T09:30:00Z", 2, object=course()["id"])
    reply = await caliper(envelope(course(), started, completed))
    assert reply.status == 200
    await connector.drain()
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["completedDateTime"][:19]) == ("completed", "2025-03-05T09:30:00")


async def test_a_grade_completes_only_under_caliper_completion_graded(connector, graph, monkeypatch):
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider(caliperCompletion="Graded"))
    submitted = caliper_event("AssignableEvent", "Submitted", "2025-03-05T09:40:00Z", 1)
    graded = caliper_event(
        "GradeEvent",
        "Graded",
        "2025-03-05T09:41:30Z",
        2,
        actor={"id": "https://learn.fabrikam.example/autograder", "type": "SoftwareApplication"},
        object={**attempt("2025-03-05T09:02:15Z"), "assignee": person()},
        generated={"id": "https://learn.fabrikam.example/scores/1", "type": "Score", "scoreGiven": 18},
    )
    await caliper(envelope(submitted))
    await connector.drain()
    assert graph.activities(PLATFORM_PROVIDER)[0]["status"] == "inProgress"
    await caliper(envelope(graded))
    await connector.drain()
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["completedDateTime"][:19]) == ("completed", "2025-03-05T09:41:30")


# --- what a sensor sees ---


async def test_get_answers_the_endpoints_configuration(connector):
    reply = await call_http_async("caliper_events", "GET", {"registrationId": "any"})
    assert reply.status == 200
    assert reply.body == {
        "caliperMaximumPayloadSize": 1024,
        "caliperSupportedVersions": [
            "http://purl.imsglobal.org/ctx/caliper/v1p1",
            "http://purl.imsglobal.org/ctx/caliper/v1p2",
        ],
        "caliperSupportedExtensions": {},
    }


@pytest.mark.parametrize(
    "key", [f"Bearer {CALIPER_KEY}", CALIPER_KEY, f"bearer {ROTATED_CALIPER_KEY}", f"  {ROTATED_CALIPER_KEY} "]
)
async def test_a_key_is_taken_with_or_without_bearer_and_rotated_keys_too(connector, key):
    assert (await caliper(session()[0], key=key)).status == 200
    assert await connector.count() == 1


@pytest.mark.parametrize(
    ("registration", "key"),
    [
        (PLATFORM_PROVIDER, None),
        (PLATFORM_PROVIDER, "Bearer "),
        (PLATFORM_PROVIDER, f"Bearer {CALIPER_KEY[:-1]}"),
        (PLATFORM_PROVIDER, f"Basic {CALIPER_KEY}"),
        ("00000000-0000-0000-0000-000000000000", f"Bearer {CALIPER_KEY}"),
        ("2b7c3f0e-8d1a-4c55-9e0b-7a1f2d3c4b5a", f"Bearer {CALIPER_KEY}"),  # a provider without caliperKeys
    ],
)
async def test_a_missing_or_wrong_key_or_an_unknown_provider_is_a_401_and_nothing_is_queued(
    connector, registration, key
):
    reply = await caliper(session()[0], registration=registration, key=key)
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="caliper"'
    assert "caliperKeys" in reply.body["error"]["message"]
    assert await connector.count() == 0


async def test_a_body_that_is_not_json_by_its_type_is_a_415(connector):
    reply = await caliper(session()[0], **{"content-type": "text/plain"})
    assert reply.status == 415
    assert (await caliper(session()[0], **{"content-type": "application/ld+json"})).status == 200


@pytest.mark.parametrize(
    ("body", "target"),
    [
        ("not json", "body"),
        ({"sensor": "x", "sendTime": "2025-03-05T09:41:02Z", "dataVersion": V1P1}, "data"),
        (envelope({**caliper_event("AssignableEvent", "Started", "2025-03-05T09:00:00Z", 1), "eventTime": "soon"}),
         "data[0].eventTime"),
    ],
)  # fmt: skip
async def test_a_malformed_envelope_is_a_400_naming_the_field_and_nothing_is_queued(connector, body, target):
    reply = await caliper(body)
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["target"] == target
    assert await connector.count() == 0


async def test_a_version_other_than_1_1_or_1_2_is_a_422(connector):
    body = {**session()[0], "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p0"}
    reply = await caliper(body)
    assert reply.status == 422
    assert reply.body["error"]["details"][0]["target"] == "dataVersion"
    assert await connector.count() == 0


# --- events that cannot be applied ---


async def test_an_event_naming_no_learner_is_dead_lettered_with_the_field_and_the_rest_queued(connector):
    anonymous = caliper_event("AssignableEvent", "Started", "2025-03-05T09:00:00Z", 1, actor={"type": "Person"})
    fine = caliper_event("AssignableEvent", "Started", "2025-03-05T09:01:00Z", 2)
    reply = await caliper(envelope(anonymous, fine))
    assert reply.status == 200  # never an error the sensor would send again and again
    assert await connector.count() == 1
    (letter,) = await poison(connector)
    assert letter["eventId"] == "c2f1e7a4-1b3d-4e9a-8f60-3d7b2a9e5c01"
    assert letter["registrationId"] == PLATFORM_PROVIDER
    assert letter["deadLetter"]["source"] == "caliper"
    assert letter["deadLetter"]["code"] == "unmappable"
    assert letter["deadLetter"]["field"] == "actor.id"
    assert "names no learner" in letter["deadLetter"]["message"]
    assert LEARNER_EMAIL not in json.dumps(letter)


async def test_a_resource_outside_the_providers_content_pattern_is_dead_lettered(connector, monkeypatch):
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider(contentIdPattern="/programs/(?P<id>[^/]+)"))
    assert (await caliper(session()[2])).status == 200
    (letter,) = await poison(connector)
    assert (letter["deadLetter"]["field"], letter["deadLetter"]["code"]) == ("object.id", "unmappable")
    assert "contentIdPattern" in letter["deadLetter"]["message"]
    assert await connector.count() == 0


async def test_a_learner_unknown_to_entra_is_dead_lettered_by_the_worker(connector, graph):
    stranger = person(email="nobody@fabrikam.example")
    await caliper(envelope(caliper_event("AssignableEvent", "Started", "2025-03-05T09:00:00Z", 1, actor=stranger)))
    (run,) = await connector.drain()
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["status"], reason["code"], reason["field"]) == (404, "learnerNotFound", "learnerUserId")
    assert "nobody@" not in reason["message"]
    assert graph.activities(PLATFORM_PROVIDER) == []


async def test_a_provider_that_creates_nothing_gets_no_email_in_its_messages(connector):
    reply = await caliper(session()[2], registration=REGISTRATION_ID)
    assert reply.status == 200
    (message,) = await connector.messages()
    assert LEARNER_EMAIL not in message
    assert "learnerUserId" not in json.loads(message)["event"]


# --- fuzzing: bodies no sensor sent ---

ENVELOPE_PARTS = st.fixed_dictionaries(
    {},
    optional={
        "sensor": json_values,
        "sendTime": st.sampled_from(["2025-03-05T09:41:02Z", "yesterday"]) | json_values,
        "dataVersion": st.sampled_from([V1P1, "http://purl.imsglobal.org/ctx/caliper/v1p2", "1.2"]) | json_values,
        "data": st.lists(
            st.builds(
                lambda event, changes: {**event, **changes},
                st.sampled_from([caliper_event("AssignableEvent", "Completed", "2025-03-05T09:40:58Z", 1)]),
                st.dictionaries(st.sampled_from(["id", "type", "action", "actor", "object", "eventTime"]), json_values),
            )
            | json_values,
            max_size=3,
        ),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(ENVELOPE_PARTS, json_values).map(json.dumps) | st.binary(max_size=200))
def test_fuzzed_envelopes_never_fail_the_function_nor_queue_from_a_rejected_request(connector, body):
    async def once():
        before = await connector.count()
        reply = await caliper(body)
        assert reply.status in (200, 400, 401, 422), reply.body  # 401: a body shaped like a JWT, and no key set
        if reply.status != 200:
            assert await connector.count() == before

    asyncio.run(once())


# --- history: a file of envelopes through backfill ---


async def test_a_file_of_envelopes_backfills_and_a_live_copy_of_an_event_is_the_same_event(connector, graph, command,
                                                                                           tmp_path):  # fmt: skip
    history = tmp_path / "caliper.jsonl"
    history.write_text("".join(json.dumps(body) + "\n" for body in session()))
    result = command("backfill", "--registration-id", PLATFORM_PROVIDER, str(history),
                     CONNECTOR_PROVIDERS=with_platform_provider())  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(Caliper envelopes, one per line): 7 record(s), 7 accepted, 0 rejected, 3 changing nothing" in result.stdout
    runs = await connector.drain()
    assert [(r.error, r.poison) for r in runs] == [(None, None)] * 4
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["completedDateTime"][:19]) == ("completed", "2025-03-05T09:28:41")
    graph.clear_requests()
    assert (await caliper(session()[5])).status == 200  # the sensor sends the completion live as well
    (run,) = await connector.drain()
    assert run.poison is None
    assert graph.requests(method="PATCH") == []


# --- Canvas's Caliper feed: no header, the envelope signed by Instructure ---


async def test_canvas_signed_envelopes_are_verified_against_the_providers_key_set(connector, graph, monkeypatch):
    from tests.support.formats import CANVAS_SUBMISSION, jwks, signing_key
    from tests.support.platforms import key_set_server

    key = signing_key("2025-03")
    account = "Kq2uJ4oTy8wB1cR5dXe7F3gH9iL0mN6pS2tV4"
    submission = json.loads(json.dumps(CANVAS_SUBMISSION))
    submission["data"][0]["extensions"] = {"com.instructure.canvas": {"root_account_uuid": account}}
    graph.seed(
        contents=[{"id": "content-217", "externalId": "217", "learningProviderId": PLATFORM_PROVIDER}],
        users=[{"id": AVERY, "userPrincipalName": "avery.lee@contoso.edu", "mail": "avery.lee@contoso.edu"}],
    )
    with key_set_server() as server:
        server.keys = jwks(key)
        providers = with_platform_provider(
            canvasJwksUrl=server.url,
            canvasRootAccountUuids=[account],
            caliperCompletion="Submitted",
            contentIdPattern=":assignment:(?P<id>\\d+)$",
        )
        monkeypatch.setenv("CONNECTOR_PROVIDERS", providers)  # fmt: skip
        reply = await caliper(key.sign(submission), key=None, **{"content-type": "application/jwt"})
        assert (reply.status, reply.body) == (200, None)
        forged = await caliper(signing_key("2025-03").sign(submission), key=None)
        assert forged.status == 401
        other = json.loads(json.dumps(submission))
        other["data"][0]["extensions"]["com.instructure.canvas"]["root_account_uuid"] = "another-institution"
        assert (await caliper(key.sign(other), key=None)).status == 403
    assert await connector.count() == 1
    await connector.drain()
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["learnerUserId"], activity["learningContentId"]) == (
        "completed",
        AVERY,
        "content-217",
    )


# --- what a rejection leaves behind ---


async def test_a_rejected_registration_id_is_logged_escaped_on_one_line(connector, caplog):
    caplog.set_level("WARNING", logger="connector.app.platform_intake")
    reply = await caliper(session()[0], registration="x\n12:00:00 ERROR forged line")
    assert reply.status == 401
    (line,) = [r.getMessage() for r in caplog.records if "rejected (401)" in r.getMessage()]
    assert line == "caliper request rejected (401) for registrationId x\\n12:00:00 ERROR forged line"
    assert CALIPER_KEY not in caplog.text


async def test_every_401_compares_the_key_whether_the_provider_exists_or_not(connector, monkeypatch):
    """Timing says nothing about which registrationIds exist: the presented key is compared in constant time
    against every key of the provider, or a stand-in's. Observed through hmac.compare_digest, not timed."""
    import hmac

    compare = hmac.compare_digest
    compared: list[bytes] = []
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(a) or compare(a, b))
    seen = []
    for registration in (PLATFORM_PROVIDER, "00000000-0000-0000-0000-000000000000"):
        compared.clear()
        assert (await caliper(session()[0], registration=registration, key="Bearer " + "w" * 43)).status == 401
        seen.append({a for a in compared if a})
    assert seen == [{b"w" * 43}] * 2
