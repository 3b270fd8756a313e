"""Everything one sandbox process holds, in one object the routes share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .entra import Entra
from .faults import FaultInjector
from .identity import Identity
from .ratelimit import RateLimiter
from .requestlog import DEFAULT_LOG_LIMIT, RequestLog, Stats
from .rules import CreateAnswers
from .seed import TENANT_ID, example_seed
from .store import Store


@dataclass
class SandboxState:
    """Tenants' data, identity, faults, request log and counters of one sandbox.

    ``store`` is the identity's own (home) tenant, where everything happens unless a token or an admin call names
    another tenant; ``tenants`` holds it and every tenant added through the admin API, by tenant id.
    """

    identity: Identity
    store: Store = field(default_factory=Store)
    tenants: dict[str, Store] = field(default_factory=dict)
    entra: Entra = field(default_factory=Entra)
    faults: FaultInjector = field(default_factory=FaultInjector)
    log: RequestLog = field(default_factory=lambda: RequestLog(DEFAULT_LOG_LIMIT))
    stats: Stats = field(default_factory=Stats)
    create_answers: CreateAnswers = field(default_factory=CreateAnswers)
    rate_limiter: RateLimiter = field(default_factory=RateLimiter)
    # Base of @odata.context URLs; the server sets it to its own /v1.0 URL once it listens.
    graph_url: str = "https://graph.microsoft.com/v1.0"
    # The --latency-ms of the command line, which a reset restores.
    startup_latency_ms: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, *, seed_example: bool = False) -> dict[str, Any] | None:
        """Only the home tenant, empty; no apps, consents, faults or rate limit; empty log, zeroed counters, default
        identity settings and create answers.

        The identity header secret and signing key survive, so running clients and their tokens keep working.
        """
        self.identity.reset()
        self.store.reset(self.identity.client_id, self.identity.principal_id)
        self.tenants.clear()
        self.tenants[TENANT_ID] = self.store
        self.entra.reset()
        self.faults.reset()
        self.faults.latency_ms = self.startup_latency_ms
        self.create_answers = CreateAnswers()
        self.rate_limiter.reset()
        self.log.clear()
        self.stats.reset()
        return self.store.seed(example_seed()) if seed_example else None

    def add_tenant(self, tenant_id: str) -> Store:
        """The tenant's data, created empty (with Microsoft Graph's service principal) on first use."""
        store = self.tenants.get(tenant_id)
        if store is None:
            store = self.tenants[tenant_id] = Store()
            store.reset()
        return store
