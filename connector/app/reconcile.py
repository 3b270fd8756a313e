"""Keeps Graph and the connector in agreement: reads Graph for the activities the connector tracks and puts right
what differs (changed elsewhere, a PATCH whose fate was unknown, a create that may not have happened, a withdrawal
Graph does not show).

Graph documents no provider-wide list of activities (the per-user one needs a signed-in user), so the connector's own
state is the index: an activity Graph holds that the connector never heard of is not seen. A difference is put right
through the queue, as any update: the row is marked as not yet sent (and as missing in Graph, when it is), and a
"nudge" event is queued that changes nothing in the merge (it ranks below every real event), so the worker sends the
whole merge again, creates the activity again (createMissing) or withdraws it again, at the provider's pace.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from connector.app.pacing import Held
from connector.app.ports import ActivityStore, Clock, Graph, StateConflict
from connector.app.tenancy import serving, tenant_of
from connector.domain.activity import ActivityState
from connector.domain.envelope import Envelope, ReconcileSlice, parse_instant, utc_iso
from connector.domain.events import CHANGEABLE, STATUSES, missing_for_create
from connector.domain.failures import GraphFailure, Kind
from connector.domain.merge import EARLIEST, graph_agrees
from connector.settings import Settings

logger = logging.getLogger(__name__)

PAGE_SIZE = 100


class ActivityPages(Protocol):
    async def activities_page(
        self, registration_id: str, continuation: str | None, size: int
    ) -> tuple[list[ActivityState], str | None]: ...


class ReconcileStore(ActivityStore, ActivityPages, Protocol):
    """The activity rows, read a page at a time."""


@dataclass
class Tally:
    """What a reconciliation found: activities checked, agreeing with Graph, corrected, missing in Graph (created
    again where the provider creates), and those Graph could not be read for."""

    checked: int = 0
    agreeing: int = 0
    corrected: int = 0
    missing: int = 0
    failed: int = 0

    def add(self, other: Tally) -> None:
        for name in (f.name for f in fields(self)):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        store: ReconcileStore,
        graph_for: Callable[[str], Awaitable[Graph]],
        enqueue: Callable[[str, int], Awaitable[None]],
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._store = store
        self._graph_for = graph_for
        self._enqueue = enqueue
        self._clock = clock

    async def start(self, registration_id: str | None = None, since_days: float | None = None) -> list[str]:
        """Puts one slice message per provider on the queue (the timer's run): the workers do the rest."""
        run_id = utc_iso(self._clock())
        since = utc_iso(self._clock() - timedelta(days=since_days)) if since_days is not None else None
        configured = [provider.registration_id for provider in self._settings.providers.values()]
        providers = [registration_id] if registration_id else configured
        for provider in providers:
            await self._enqueue(ReconcileSlice(provider, run_id, since).to_json(), 0)
        logger.info("reconciliation %s started for %d provider(s)", run_id, len(providers))
        return providers

    async def run_slice(self, work: ReconcileSlice) -> Tally:
        """The worker's part: reconciles one page and queues the next page's slice; held by a 429, queues this one
        again for later. A provider no longer configured is left alone: which tenant's Graph it is in is unknown."""
        if self._settings.provider(work.registration_id) is None:
            logger.warning(
                "reconciliation %s: provider %s is not configured, skipped", work.run_id, work.registration_id
            )
            return Tally()
        try:
            with serving(self._settings, work.registration_id):
                tally, following = await self.page(work)
        except Held as held:
            await self._enqueue(work.to_json(), held.delay_seconds(self._clock()))
            logger.info("reconciliation %s of provider %s held after a 429", work.run_id, work.registration_id)
            return Tally()
        if following is not None:
            await self._enqueue(following.to_json(), 0)
        logger.info(
            "reconciliation %s of provider %s: %s%s",
            work.run_id,
            work.registration_id,
            ", ".join(f"{k} {v}" for k, v in tally.as_dict().items()),
            "" if following is None else " (more to come)",
            extra={"registrationId": work.registration_id, "reconcile": tally.as_dict()},
        )
        return tally

    async def page(self, work: ReconcileSlice) -> tuple[Tally, ReconcileSlice | None]:
        """Reconciles one page of the provider's activities; the slice of the next page, if any. A hold (Held)
        interrupts it: the page is done again later, which changes nothing for the rows already done."""
        rows, continuation = await self._store.activities_page(work.registration_id, work.continuation, PAGE_SIZE)
        tally = Tally()
        for row in rows:
            outcome = await self.check(row, work)
            if outcome != "skipped":
                tally.checked += 1
                setattr(tally, outcome, getattr(tally, outcome) + 1)
        return tally, (replace(work, continuation=continuation) if continuation is not None else None)

    async def check(self, row: ActivityState, work: ReconcileSlice) -> str:
        """agreeing, corrected, missing, failed, or skipped (untouched since `since`)."""
        if work.since is not None and not _touched_since(row, parse_instant(work.since)):
            return "skipped"
        graph = await self._graph_for(row.registration_id)
        try:  # a Graph id remembered in another tenant (the provider's tenantId changed) is looked up again
            current = await _graphs_copy(graph, row.in_tenant(tenant_of(self._settings, row.registration_id)))
        except GraphFailure as failure:
            logger.warning("reconciliation could not read activity %s: %s", row.graph_id or "(by external id)", failure)
            return "failed"
        if not row.merged.exists:
            return "agreeing" if current is None else await self._nudge(row, work, removal=True)
        if current is None:
            provider = self._settings.provider(row.registration_id)
            if provider is not None and provider.create_missing and row.external_id and _creatable(row):
                await self._nudge(row, work, missing=True)
            return "missing"
        odata_type = row.odata_type or current.get("@odata.type") or ""
        ours = {k: v for k, v in row.merged.values.items() if k in CHANGEABLE.get(odata_type, ())}
        if graph_agrees(ours, current) and not row.unsure:
            return "agreeing"
        return await self._nudge(row, work)

    async def _nudge(
        self, row: ActivityState, work: ReconcileSlice, *, missing: bool = False, removal: bool = False
    ) -> str:
        """Marks the row as not sent (missing in Graph: no Graph id) and queues an event that changes nothing."""
        odata_type = row.odata_type
        if odata_type is None:
            return "failed"
        for _ in range(5):
            full = await self._store.load(row.registration_id, row.key)  # a listed row lacks the events seen
            marked = replace(
                full,
                version=full.version + 1,
                status="pending",
                graph_id=None if missing else full.graph_id,
            )
            try:
                await self._store.save(marked)
                break
            except StateConflict:
                continue  # a worker wrote it meanwhile: mark what it wrote
        await self._enqueue(_nudge_envelope(full, work, odata_type, removal, self._clock()).to_json(), 0)
        return "corrected"


def _creatable(row: ActivityState) -> bool:
    """Whether the events seen name what creating the activity takes: without it a nudge would only be
    dead-lettered again, on every run."""
    return not missing_for_create(row.merged.identity, row.odata_type)


def _touched_since(row: ActivityState, since: datetime) -> bool:
    times = [t for t in (row.last_attempt_at, row.last_applied_at, row.deleted_at) if t]
    return any(parse_instant(t) >= since for t in times)


async def _graphs_copy(graph: Graph, row: ActivityState) -> dict[str, Any] | None:
    """The activity as Graph holds it, through the provider's own URL; None when Graph has no such activity."""
    try:
        if row.graph_id:
            return await graph.get_activity(row.registration_id, row.graph_id)
        if row.external_id:
            return await graph.find_activity(row.registration_id, row.external_id)
        return None
    except GraphFailure as failure:
        if failure.kind is Kind.NOT_FOUND:
            return None
        raise


def _nudge_envelope(
    row: ActivityState, work: ReconcileSlice, odata_type: str, removal: bool, now: datetime
) -> Envelope:
    """An event for the row's activity that changes nothing in its merge: it ranks below every real event."""
    names: dict[str, Any] = (
        {"externalcourseActivityId": row.external_id} if row.external_id else {"learningCourseActivityId": row.graph_id}
    )
    if removal:
        said: dict[str, Any] = {"@removed": {"reason": row.deletion_reason or "deleted"}}
    else:
        said = {"status": row.merged.values.get("status") or STATUSES[odata_type][0]}
    earliest = utc_iso(EARLIEST.time)
    return Envelope(
        id=f"reconcile:{work.run_id}:{row.key}",
        registration_id=row.registration_id,
        event={"@odata.type": odata_type, **names, **said},
        source="reconcile",
        event_time=earliest,
        received_at=utc_iso(now),
    )


async def reconcile_now(
    reconciler: Reconciler, registration_ids: list[str], since_days: float | None, clock: Clock
) -> dict[str, Tally]:
    """The operator's run (`python -m connector reconcile`): every page of each provider here and now, waiting out
    holds; the corrections still go through the queue."""
    import asyncio

    since = utc_iso(clock() - timedelta(days=since_days)) if since_days is not None else None
    tallies: dict[str, Tally] = {}
    for registration_id in registration_ids:
        work: ReconcileSlice | None = ReconcileSlice(registration_id, utc_iso(clock()), since)
        tally = tallies[registration_id] = Tally()
        while work is not None:
            try:
                found, work = await reconciler.page(work)
            except Held as held:
                await asyncio.sleep(max((held.until - clock()).total_seconds(), 0.5))
                continue
            tally.add(found)
    return tallies
