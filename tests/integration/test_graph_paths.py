"""No id can name another Graph resource: dot-only path segments are percent-encoded, as the sandbox receives them.

Ids that are only dots are refused at intake; these tests call the Graph adapter directly, as a message already
on the queue (or a Graph id the adapter is given some other way) would reach it.
"""

from __future__ import annotations

import pytest

from connector import bootstrap
from connector.domain.failures import GraphFailure
from devtools.examples import REGISTRATION_ID

ASSIGNMENT = "#microsoft.graph.learningAssignment"
ACTIVITIES = f"/employeeExperience/learningProviders/{REGISTRATION_ID}/learningCourseActivities"


@pytest.mark.parametrize(("activity_id", "encoded"), [("..", "%2E%2E"), (".", "%2E"), ("...", "%2E%2E%2E")])
async def test_a_dot_only_activity_id_stays_one_segment_of_the_activity_path(connector, graph, activity_id, encoded):
    gateway = await bootstrap.graph_gateway()
    with pytest.raises(GraphFailure) as failure:
        await gateway.update_activity(REGISTRATION_ID, activity_id, ASSIGNMENT, {"status": "inProgress"})
    assert failure.value.status == 404
    (patch,) = graph.requests(method="PATCH")
    assert patch["rawPath"] == f"{ACTIVITIES}/{encoded}"
    assert patch["path"] == f"{ACTIVITIES}/{activity_id}"


async def test_a_dot_only_graph_id_is_looked_up_as_itself(connector, graph):
    gateway = await bootstrap.graph_gateway()
    with pytest.raises(GraphFailure):
        await gateway.get_activity(REGISTRATION_ID, "..")
    (lookup,) = graph.requests(method="GET")
    assert lookup["rawPath"] == f"{ACTIVITIES}/%2E%2E"


async def test_an_external_id_cannot_leave_its_key_literal(connector, graph):
    gateway = await bootstrap.graph_gateway()
    with pytest.raises(GraphFailure):
        await gateway.find_activity(REGISTRATION_ID, "')/../../x('")
    (lookup,) = graph.requests(method="GET")
    assert lookup["path"] == f"{ACTIVITIES}(externalcourseActivityId=''')/../../x(''')"
    assert lookup["rawPath"].startswith(f"{ACTIVITIES}(externalcourseActivityId='")
    assert "/" not in lookup["rawPath"].removeprefix(f"{ACTIVITIES}(")
