"""One fleet, one pace (issue 13): after a 429 for a provider, every instance holds that provider's updates until
Graph's wait is over, reading the shared hold from storage; other providers go on."""

from __future__ import annotations

import json

from connector import bootstrap
from connector.app.apply_update import Delivery
from devtools.examples import ASSIGNMENT_EXTERNAL_ID, REGISTRATION_ID, SELF_INITIATED_EXTERNAL_ID
from tests.support.signing import CREATING_SECRET
from tests.support.xapi import CREATING_PROVIDER


def progress(external_id: str, odata_type: str = "#microsoft.graph.learningAssignment") -> dict:
    return {"@odata.type": odata_type, "externalcourseActivityId": external_id, "status": "inProgress"}


async def test_after_a_429_another_instance_holds_the_providers_updates_without_calling_graph(connector, graph):
    graph.add_fault(target="graph", method="PATCH", status=429, retry_after=60, count=1)
    first, second = bootstrap.Parts(bootstrap.settings()), bootstrap.Parts(bootstrap.settings())
    try:
        throttled = connector.post(REGISTRATION_ID, progress(ASSIGNMENT_EXTERNAL_ID)).messages[0]
        assert (await first.worker.handle(Delivery(throttled.encode(), "m-1"))).status == "throttled"
        graph.clear_requests()

        self_initiated = progress(SELF_INITIATED_EXTERNAL_ID, "#microsoft.graph.learningSelfInitiatedCourse")
        held = connector.post(REGISTRATION_ID, self_initiated).messages[0]
        assert (await second.worker.handle(Delivery(held.encode(), "m-2"))).status == "held"
        assert graph.requests() == []  # the other instance never asked Graph
        assert await connector.count() == 2  # both back on the queue, invisible for now
        assert await connector.messages() == []

        other = connector.post(CREATING_PROVIDER, progress("someone-elses"), secret=CREATING_SECRET).messages[0]
        outcome = await second.worker.handle(Delivery(other.encode(), "m-3"))
        assert outcome.status != "held"  # another provider goes on
        assert graph.requests(), "the other provider's update went to Graph"
        assert json.loads(outcome.dead_letter or "{}").get("deadLetter", {}).get("status") in (None, 400, 404)
    finally:
        await first.close()
        await second.close()
