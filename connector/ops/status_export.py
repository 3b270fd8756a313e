"""`python -m connector status`: the activities the connector tracks for a provider, from its state table, as CSV
for a spreadsheet or as JSON for tools. Rows are written as the table pages them: constant memory."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TextIO

from connector.domain.events import TYPE_NAMES

if TYPE_CHECKING:
    from connector.adapters.activity_store import StateStore
    from connector.domain.activity import ActivityState

#: The CSV's columns: which activity, its state, when it was last applied, the last error, the customer tenant.
COLUMNS = (
    "externalcourseActivityId",
    "learningCourseActivityId",
    "type",
    "state",
    "lastAppliedAt",
    "lastRequestId",
    "lastErrorStatus",
    "lastErrorCode",
    "lastErrorMessage",
    "lastErrorAt",
    "nextAttemptAt",
    "recentEventIds",
    "tenantId",
)


def csv_row(state: ActivityState) -> list[Any]:
    error = state.last_error or {}
    return [
        state.external_id,
        state.graph_id,
        TYPE_NAMES.get(state.odata_type or "", state.odata_type),
        state.status,
        state.last_applied_at,
        state.last_request_id,
        error.get("status"),
        error.get("code"),
        error.get("message"),
        error.get("at"),
        state.next_attempt_at,
        " ".join(state.recent),
        state.tenant_id,
    ]


async def tracked(store: StateStore, registration_id: str, state: str | None) -> AsyncIterator[ActivityState]:
    """The provider's activity rows; none when the table does not exist yet (nothing was ever applied)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        async for row in store.list_activities(registration_id, state):
            yield row
    except ResourceNotFoundError:
        return


async def export(activities: AsyncIterator[ActivityState], output_format: str, out: TextIO) -> int:
    """Writes each activity as it comes; returns how many."""
    count = 0
    if output_format == "csv":
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        async for state in activities:
            writer.writerow(csv_row(state))
            count += 1
        return count
    if output_format == "json":
        out.write("[")
    async for state in activities:
        text = json.dumps(state.public(), ensure_ascii=False)
        if output_format == "json":
            out.write(f"{',' if count else ''}\n{text}")
        else:
            out.write(f"{text}\n")
        count += 1
    if output_format == "json":
        out.write("\n]\n" if count else "]\n")
    return count
