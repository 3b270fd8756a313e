"""SCORM Cloud registration postbacks through the app's real functions, Azurite and the Graph sandbox."""

from __future__ import annotations

import asyncio
import json
import random
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.domain.envelope import POISON_QUEUE_NAME
from devtools.examples import REGISTRATION_ID
from tests.support.formats import SCORM_REPORT_XML, json_values, registration
from tests.support.platforms import (
    PLATFORM_PROVIDER,
    SCORM_PASSWORD,
    SCORM_USER,
    basic,
    post,
    seed_platform_provider,
    with_platform_provider,
)

SAM = "5a3e0000-0000-4000-8000-0000000000a1"
SAM_EMAIL = "sam.patel@contoso.example"


@pytest.fixture(autouse=True)
def platform_provider(connector, monkeypatch):
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider())
    seed_platform_provider(
        connector.graph, "cyber-basics-2025", users=[{"id": SAM, "userPrincipalName": SAM_EMAIL, "mail": SAM_EMAIL}]
    )


async def postback(body, *, registration_id: str = PLATFORM_PROVIDER, auth: str | None = None, form: bool = False):
    """As SCORM Cloud posts: `httpbasic` (JSON body, HTTP Basic), or `form` (data, userName, password)."""
    if form:
        fields = {"data": body if isinstance(body, str) else json.dumps(body), "userName": SCORM_USER}
        fields["password"] = SCORM_PASSWORD
        headers = {"content-type": "application/x-www-form-urlencoded; charset=UTF-8"}
        return await post("scorm_cloud_postbacks", registration_id, urlencode(fields), headers)
    headers = {"content-type": "application/json; charset=UTF-8", "authorization": auth or basic()}
    return await post("scorm_cloud_postbacks", registration_id, body, headers)


def progress() -> list[dict]:
    """One registration's postbacks as the learner works through it: each a newer `updated`."""
    first = "2025-03-06T13:31:40.000Z"
    return [
        registration(
            updated="2025-03-06T13:31:45.000Z",
            registrationCompletion="INCOMPLETE",
            registrationCompletionAmount=0.0,
            registrationSuccess="UNKNOWN",
            firstAccessDate=first,
            completedDate=None,
            score=None,
        ),
        registration(
            updated="2025-03-06T13:48:02.000Z",
            registrationCompletion="INCOMPLETE",
            registrationCompletionAmount=0.5,
            registrationSuccess="UNKNOWN",
            completedDate=None,
        ),
        registration(updated="2025-03-06T13:59:30.000Z", registrationCompletionAmount="0.75", completedDate=None,
                     registrationCompletion="INCOMPLETE", registrationSuccess="UNKNOWN"),
        registration(),  # COMPLETED, PASSED, at 14:05:09
    ]  # fmt: skip


async def test_postbacks_in_shuffled_order_create_and_complete_the_activity(connector, graph):
    bodies = progress()
    random.Random(6).shuffle(bodies)
    for index, body in enumerate(bodies):
        reply = await postback(body, form=index % 2 == 0)  # both auth types
        assert reply.status == 200, reply.body
        assert reply.body["accepted"] == 1
    runs = await connector.drain()
    assert [(r.error, r.poison) for r in runs] == [(None, None)] * 4
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["learnerUserId"], activity["learningContentId"]) == (SAM, "content-cyber-basics-2025")
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
    assert activity["startedDateTime"].startswith("2025-03-06T13:31:40")
    assert activity["completedDateTime"].startswith("2025-03-06T14:05:09")


async def test_a_stale_postback_after_a_newer_one_changes_nothing(connector, graph):
    halfway, _, _, done = progress()
    await postback(done)
    await connector.drain()
    graph.clear_requests()
    assert (await postback(halfway)).status == 200  # SCORM Cloud's retry of an older state, arriving late
    runs = await connector.drain()
    assert {r.poison for r in runs} == {None}
    assert graph.requests(method="PATCH") == []
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)


async def test_redelivering_every_postback_sends_graph_nothing_more(connector, graph):
    for body in progress():
        await postback(body)
    await connector.drain()
    sent = len(graph.requests(method="PATCH")) + len(graph.requests(method="POST"))
    for body in progress():
        assert (await postback(body, form=True)).status == 200
    await connector.drain()
    assert len(graph.requests(method="PATCH")) + len(graph.requests(method="POST")) == sent


async def test_the_legacy_xml_report_in_a_form_updates_the_registrations_activity(connector, graph):
    await postback(progress()[1])
    await connector.drain()
    fields = urlencode({"data": SCORM_REPORT_XML, "username": SCORM_USER, "password": SCORM_PASSWORD})
    reply = await post("scorm_cloud_postbacks", PLATFORM_PROVIDER, fields, {})  # v1: lower-case username, no type
    assert reply.status == 200, reply.body
    await connector.drain()
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)


async def test_failed_stays_in_progress_where_the_provider_asks(connector, graph, monkeypatch):
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider(scormFailedInProgress=True))
    await postback(registration(registrationSuccess="FAILED", registrationCompletionAmount=1.0))
    await connector.drain()
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["completionPercentage"]) == ("inProgress", 100)


# --- who may post ---


@pytest.mark.parametrize(
    ("registration_id", "auth"),
    [
        (PLATFORM_PROVIDER, basic(password="w" * 43)),
        (PLATFORM_PROVIDER, basic(user="someone-else")),
        (PLATFORM_PROVIDER, "Bearer x"),
        ("00000000-0000-0000-0000-000000000000", basic()),
        ("2b7c3f0e-8d1a-4c55-9e0b-7a1f2d3c4b5a", basic()),  # a provider without scormCloudCredentials
    ],
)
async def test_bad_credentials_or_an_unknown_provider_are_a_401_and_nothing_is_queued(connector, registration_id, auth):
    reply = await postback(registration(), registration_id=registration_id, auth=auth)
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == 'Basic realm="scorm-cloud"'
    assert await connector.count() == 0
    assert await connector.count(POISON_QUEUE_NAME) == 0


async def test_a_form_with_a_wrong_password_is_a_401(connector):
    fields = urlencode({"data": json.dumps(registration()), "userName": SCORM_USER, "password": "w" * 43})
    headers = {"content-type": "application/x-www-form-urlencoded"}
    assert (await post("scorm_cloud_postbacks", PLATFORM_PROVIDER, fields, headers)).status == 401
    assert await connector.count() == 0


# --- bodies SCORM Cloud would retry 70 times: answered 200, dead-lettered ---


@pytest.mark.parametrize(
    ("body", "form", "target"),
    [
        ("{not json", False, "body"),
        (registration(registrationCompletion="HALFWAY"), False, "registrationCompletion"),
        (registration(id=None), True, "id"),
        ('<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]><rsp>&x;</rsp>', True, "data"),
    ],
)
async def test_an_unreadable_postback_from_the_provider_is_a_200_and_a_dead_letter_naming_the_field(
    connector, body, form, target
):
    reply = await postback(body, form=form)
    assert reply.status == 200
    assert (reply.body["accepted"], reply.body["deadLettered"]) == (0, 1)
    assert reply.body["errors"][0]["target"] == target
    assert await connector.count() == 0
    (letter,) = [json.loads(m) for m in await connector.messages(POISON_QUEUE_NAME)]
    assert (letter["registrationId"], letter["source"]) == (PLATFORM_PROVIDER, "scorm-cloud")
    assert (letter["deadLetter"]["code"], letter["deadLetter"]["field"]) == ("badRequest", target)


async def test_a_form_without_data_is_dead_lettered_when_its_credentials_are_good(connector):
    fields = urlencode({"userName": SCORM_USER, "password": SCORM_PASSWORD})
    headers = {"content-type": "application/x-www-form-urlencoded"}
    reply = await post("scorm_cloud_postbacks", PLATFORM_PROVIDER, fields, headers)
    assert (reply.status, reply.body["errors"][0]["target"]) == (200, "data")


async def test_a_course_outside_the_content_pattern_is_dead_lettered_as_unmappable(connector, monkeypatch):
    monkeypatch.setenv("CONNECTOR_PROVIDERS", with_platform_provider(contentIdPattern="^course-(?P<id>.+)$"))
    reply = await postback(registration())
    assert (reply.status, reply.body["deadLettered"]) == (200, 1)
    (letter,) = [json.loads(m) for m in await connector.messages(POISON_QUEUE_NAME)]
    assert (letter["deadLetter"]["code"], letter["deadLetter"]["field"]) == ("unmappable", "course.id")
    assert letter["eventId"].startswith("scorm-")


async def test_a_learner_unknown_to_entra_is_dead_lettered_by_the_worker(connector, graph):
    await postback(registration(learner={"id": "lrn-1", "email": "nobody@contoso.example"}))
    (run,) = await connector.drain()
    reason = json.loads(run.poison)["deadLetter"]
    assert (reason["code"], reason["field"]) == ("learnerNotFound", "learnerUserId")
    assert graph.activities(PLATFORM_PROVIDER) == []


async def test_a_provider_that_creates_nothing_gets_neither_email_nor_name_in_its_messages(connector):
    assert (await postback(registration(), registration_id=REGISTRATION_ID)).status == 200
    (message,) = await connector.messages()
    assert SAM_EMAIL not in message
    assert "Patel" not in message


async def test_no_answer_is_a_redirect_nor_a_500_for_any_method_of_failing(connector):
    for body in ("", "data=", "<rsp stat='fail'/>", "\x00\xff"):
        reply = await postback(body)
        assert 200 <= reply.status < 300 or reply.status in (401, 411, 413)


# --- fuzzing ---


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.dictionaries(st.sampled_from(sorted(registration())), json_values).map(lambda d: {**registration(), **d}),
        json_values,
    ).map(json.dumps)
    | st.binary(max_size=200),
    form=st.booleans(),
    authorized=st.booleans(),
)
def test_fuzzed_postbacks_never_fail_the_function_nor_queue_from_a_rejected_request(connector, body, form, authorized):
    async def once():
        before = (await connector.count(), await connector.count(POISON_QUEUE_NAME))
        if form:
            data = body.decode("latin-1") if isinstance(body, bytes) else body
            password = SCORM_PASSWORD if authorized else "w" * 43
            fields = urlencode({"data": data, "userName": SCORM_USER, "password": password})
            reply = await post("scorm_cloud_postbacks", PLATFORM_PROVIDER, fields, {})
        else:
            reply = await postback(body, auth=None if authorized else basic(password="w" * 43))
        assert reply.status == (200 if authorized else 401), reply.body
        if reply.status != 200:
            assert (await connector.count(), await connector.count(POISON_QUEUE_NAME)) == before

    asyncio.run(once())


async def test_a_file_of_registrations_backfills_ordered_by_their_updated_time(connector, graph, command, tmp_path):
    history = tmp_path / "registrations.jsonl"
    history.write_text("".join(json.dumps(body) + "\n" for body in reversed(progress())))
    result = command("backfill", "--registration-id", PLATFORM_PROVIDER, str(history),
                     CONNECTOR_PROVIDERS=with_platform_provider())  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(SCORM Cloud registrations, one per line): 4 record(s), 4 accepted" in result.stdout
    runs = await connector.drain()
    assert [(r.error, r.poison) for r in runs] == [(None, None)] * 4
    (activity,) = graph.activities(PLATFORM_PROVIDER)
    assert (activity["status"], activity["completionPercentage"]) == ("completed", 100)
    assert activity["completedDateTime"].startswith("2025-03-06T14:05:09")
