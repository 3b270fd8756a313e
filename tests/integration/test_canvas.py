"""Canvas Live Events (Canvas format) through the app's real functions, Azurite and the Graph sandbox; the signed
form verified against a key set the test publishes on loopback (its own keys: Instructure's stay unknown here)."""

from __future__ import annotations

import asyncio
import json
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.adapters.jwks import KeySetClient
from connector.domain.envelope import POISON_QUEUE_NAME
from connector.domain.formats.canvas import map_event, parse_event
from tests.support.formats import (
    CANVAS_ROOT,
    course_completed,
    course_progress,
    enrollment,
    json_values,
    jwks,
    signing_key,
)
from tests.support.platforms import (
    PLATFORM_PROVIDER,
    key_set_server,
    post,
    seed_platform_provider,
    with_platform_provider,
)

NOOR = "7e0a0000-0000-4000-8000-0000000000c1"
NOOR_EMAIL = "noor.haddad@contoso.example"
CURRENT, NEXT = signing_key("2025-03"), signing_key("2025-04")
STRANGER = signing_key("2025-03")  # the same kid, another key: a forger's


@pytest.fixture
def key_sets(connector, monkeypatch):
    """Instructure's published keys, as a loopback server; the platform provider verifies against it."""
    with key_set_server() as server:
        server.keys = jwks(CURRENT)
        monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider(canvasJwksUrl=server.url))
        seed_platform_provider(
            connector.graph, "565", users=[{"id": NOOR, "userPrincipalName": NOOR_EMAIL, "mail": NOOR_EMAIL}]
        )
        yield server


def signed(event: dict, key=CURRENT, kid: str | None = None, **claims) -> str:
    """The event as Canvas's "Sign Payload" sends it: a JWT whose claims are the event."""
    now = int(time.time())
    return key.sign({**event, "iat": now, "exp": now + 300, **claims}, kid=kid)


async def canvas(body, registration: str = PLATFORM_PROVIDER, content_type: str = "application/json"):
    return await post("canvas_live_events", registration, body, {"content-type": content_type})


def session() -> list[dict]:
    """Noor's course: enrolled by the registrar, modules done one by one, then completed."""
    return [
        enrollment("enrollment_created", "active", "2025-03-01T08:00:00Z"),
        course_progress(1, 6, "2025-03-10T09:00:00Z"),
        course_progress(3, 6, "2025-03-11T10:30:00Z"),
        course_progress(5, 6, "2025-03-12T15:00:00Z"),
        course_completed("2025-03-12T16:00:05.000Z", "2025-03-12T15:58:00.218Z"),
    ]


async def test_a_signed_session_in_shuffled_order_creates_and_completes_the_activity(connector, graph, key_sets):
    bodies = [signed(event) for event in session()[1:]]
    random.Random(3).shuffle(bodies)
    for body in bodies:
        reply = await canvas(body, content_type="text/plain")
        assert reply.status == 200, reply.body
        assert reply.body["accepted"] == 1
    runs = await connector.drain()
    assert [(r.error, r.poison) for r in runs] == [(None, None)] * 4
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["learnerUserId"], activity["learningContentId"]) == (NOOR, "content-565")
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
    assert activity["startedDateTime"].startswith("2025-03-10T09:00:00")  # the first progress
    assert activity["completedDateTime"].startswith("2025-03-12T15:58:00")  # Canvas's completed_at
    assert key_sets.requests == 1  # the key set is fetched once and cached


async def test_an_enrollment_progress_and_withdrawal_reach_an_assignment(connector, graph, key_sets):
    enrolled, deleted = session()[0], enrollment("enrollment_updated", "deleted", "2025-04-01T12:00:00Z")
    external_id = map_event(parse_event(enrolled), content_id=lambda iri: "565").external_id
    graph.seed(
        activities=[
            {
                "@odata.type": "#microsoft.graph.learningAssignment",
                "id": "a55160ed-0000-4000-8000-000000000565",
                "externalcourseActivityId": external_id,
                "learnerUserId": NOOR,
                "learningContentId": "content-565",
                "learningProviderId": PLATFORM_PROVIDER,
                "assignmentType": "required",
                "status": "notStarted",
            }
        ]
    )
    for event in (enrolled, course_progress(3, 6, "2025-03-11T10:30:00Z")):
        assert (await canvas(signed(event))).status == 200
    runs = await connector.drain()
    assert [r.poison for r in runs] == [None, None]
    (assigned,) = graph.activities(PLATFORM_PROVIDER)
    assert (assigned["status"], assigned["completionPercentage"]) == ("inProgress", 50)
    assert assigned["assignedDateTime"].startswith("2025-02-20T08:00:00")  # the enrollment's created_at
    assert (await canvas(signed(deleted))).status == 200
    runs = await connector.drain()
    assert [r.poison for r in runs] == [None]
    assert graph.activities(PLATFORM_PROVIDER) == []
    assert len(graph.requests(method="DELETE")) == 1


async def test_redelivering_every_event_sends_graph_nothing_more(connector, graph, key_sets):
    bodies = [signed(event) for event in session()[1:]]
    for body in bodies:
        await canvas(body)
    await connector.drain()
    sent = len(graph.requests(method="PATCH")) + len(graph.requests(method="POST"))
    for body in bodies:  # Canvas retries a timeout with the same token
        assert (await canvas(body)).status == 200
    for event in session()[1:]:  # and the same event signed again is the same event
        assert (await canvas(signed(event))).status == 200
    await connector.drain()
    assert len(graph.requests(method="PATCH")) + len(graph.requests(method="POST")) == sent


# --- signatures and keys ---


async def test_a_key_published_after_the_set_was_cached_is_fetched_once(connector, key_sets, monkeypatch):
    assert (await canvas(signed(session()[1]))).status == 200
    monkeypatch.setattr(KeySetClient, "min_refresh_interval", 0.0)  # a month later, as far as the cache can tell
    key_sets.keys = jwks(CURRENT, NEXT)  # Instructure rotates monthly
    for _ in range(3):
        assert (await canvas(signed(session()[2], key=NEXT))).status == 200
    assert key_sets.requests == 2


async def test_unknown_kids_fetch_the_set_at_most_once_a_minute(connector, key_sets, monkeypatch):
    for index in range(5):
        reply = await canvas(signed(session()[1], kid=f"forged-{index}"))
        assert reply.status == 401
        assert "not in Instructure's published key set" in reply.body["error"]["message"]
    assert key_sets.requests == 1  # the first fetch; none again within the minute
    monkeypatch.setattr(KeySetClient, "min_refresh_interval", 0.0)  # the minute has passed
    assert (await canvas(signed(session()[1], kid="forged-again"))).status == 401
    assert key_sets.requests == 2
    assert await connector.count() == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (lambda: STRANGER.sign({**session()[1]}), "does not verify"),
        (lambda: signed(session()[1], exp=int(time.time()) - 3600), "expired"),
        (lambda: signed(session()[1])[:-4] + "AAAA", "does not verify"),
        (lambda: session()[1], "Unsigned events are not taken"),
    ],
)
async def test_a_forged_expired_or_unsigned_event_is_a_401_and_nothing_is_queued(connector, key_sets, body, says):
    reply = await canvas(body())
    assert reply.status == 401
    assert says in reply.body["error"]["message"]
    assert await connector.count() == 0
    assert await connector.count(POISON_QUEUE_NAME) == 0


async def test_an_unknown_provider_or_one_without_a_key_set_is_a_401(connector, monkeypatch):
    assert (await canvas(signed(session()[1]), registration="00000000-0000-0000-0000-000000000000")).status == 401
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider())
    reply = await canvas(signed(session()[1]))
    assert (reply.status, "canvasJwksUrl" in reply.body["error"]["message"]) == (401, True)


async def test_a_key_set_that_cannot_be_fetched_is_a_503_canvas_retries(connector, key_sets):
    key_sets.status = 500
    reply = await canvas(signed(session()[1]))
    assert reply.status == 503
    assert reply.headers["retry-after"] == "60"
    assert await connector.count() == 0


async def test_unsigned_events_are_taken_where_the_provider_allows_them(connector, graph, monkeypatch):
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider(canvasAllowUnsigned=True))
    seed_platform_provider(graph, "565", users=[{"id": NOOR, "userPrincipalName": NOOR_EMAIL, "mail": NOOR_EMAIL}])
    assert (await canvas(course_progress(3, 6, "2025-03-11T10:30:00Z"))).status == 200
    await connector.drain()
    assert graph.activities(PLATFORM_PROVIDER)[0]["completionPercentage"] == 50


async def test_another_canvas_accounts_event_is_a_403_where_the_provider_names_its_accounts(
    connector, key_sets, monkeypatch
):
    own = CANVAS_ROOT["root_account_uuid"]
    providers = with_platform_provider(canvasJwksUrl=key_sets.url, canvasRootAccountUuids=[own])
    monkeypatch.setenv("CONNECTOR_PROVIDERS", providers)
    assert (await canvas(signed(session()[1]))).status == 200
    other = session()[1]
    other["metadata"]["root_account_uuid"] = "Zz9otherInstitution0000000000000000000"
    reply = await canvas(signed(other))
    assert reply.status == 403
    assert "canvasRootAccountUuids" in reply.body["error"]["message"]
    assert await connector.count() == 1


# --- events that carry nothing, or cannot be applied ---


async def test_an_event_without_course_progress_is_a_200_and_queues_nothing(connector, key_sets):
    login = {"metadata": {"event_name": "logged_in", "event_time": "2025-03-10T08:59:00Z"}, "body": {}}
    reply = await canvas(signed(login))
    assert (reply.status, reply.body["skipped"]) == (200, 1)
    assert await connector.count() == 0


async def test_a_course_outside_the_content_pattern_is_a_200_and_a_dead_letter(connector, key_sets, monkeypatch):
    pattern = "urn:instructure:canvas:course:9(?P<id>[0-9]+)$"
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider(canvasJwksUrl=key_sets.url,
                                                                     contentIdPattern=pattern))  # fmt: skip
    reply = await canvas(signed(session()[1]))
    assert (reply.status, reply.body["deadLettered"]) == (200, 1)
    (letter,) = [json.loads(m) for m in await connector.messages(POISON_QUEUE_NAME)]
    assert (letter["source"], letter["deadLetter"]["field"]) == ("canvas", "body.course.id")
    assert NOOR_EMAIL not in json.dumps(letter)


async def test_a_learner_unknown_to_entra_is_dead_lettered_by_the_worker(connector, graph, key_sets):
    stranger = course_progress(1, 6, "2025-03-10T09:00:00Z")
    stranger["body"]["user"]["email"] = "nobody@contoso.example"
    await canvas(signed(stranger))
    (run,) = await connector.drain()
    assert json.loads(run.poison)["deadLetter"]["code"] == "learnerNotFound"
    assert graph.activities(PLATFORM_PROVIDER) == []


@pytest.mark.parametrize(
    ("event", "target"),
    [
        ({"body": {}}, "metadata"),
        ({"metadata": {"event_name": "course_progress", "event_time": "later"}, "body": {}}, "metadata.event_time"),
        ({**course_progress(1, 6, "2025-03-10T09:00:00Z"), "body": {"progress": {"requirement_count": "six"}}},
         "body.progress.requirement_count"),
    ],
)  # fmt: skip
async def test_a_signed_body_that_is_not_a_live_event_is_a_400_naming_the_field(connector, key_sets, event, target):
    reply = await canvas(signed(event))
    assert reply.status == 400
    assert reply.body["error"]["details"][0]["target"] == target
    assert await connector.count() == 0


# --- fuzzing ---


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    event=st.one_of(
        st.dictionaries(st.sampled_from(["metadata", "body"]), json_values).map(
            lambda parts: {**course_progress(1, 6, "2025-03-10T09:00:00Z"), **parts}
        ),
        json_values,
    ),
    sign=st.booleans(),
)
def test_fuzzed_events_never_fail_the_function_nor_queue_from_a_rejected_request(connector, key_sets, event, sign):
    async def once():
        before = await connector.count()
        body = signed(event) if sign and isinstance(event, dict) else json.dumps(event)
        reply = await canvas(body)
        assert reply.status in ((200, 400) if sign and isinstance(event, dict) else (401,)), reply.body
        if reply.status != 200:
            assert await connector.count() == before

    asyncio.run(once())


async def test_a_failed_refresh_keeps_the_set_in_hand(connector, key_sets, monkeypatch):
    assert (await canvas(signed(session()[1]))).status == 200
    monkeypatch.setattr(KeySetClient, "min_refresh_interval", 0.0)
    key_sets.status = 503  # Instructure's endpoint is down
    forged = await canvas(signed(session()[2], kid="unknown"))
    assert forged.status == 401  # the unknown key stays unknown; no 503 for what the cached set can judge
    assert (await canvas(signed(session()[3]))).status == 200
    assert key_sets.requests == 2
