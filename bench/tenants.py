"""Warm CPU per callback when the callbacks go to one customer tenant, and when they are spread over 50.

One warmed-up process with one set of settings: 51 providers, each in a customer tenant of its own (reached through
the multi-tenant app, ClientAssertionCredential with the managed identity's token as assertion, over the sandbox's
TLS listener), and the benchmark's provider in the managed identity's own tenant, for context. Three kinds of
block, alternating round after round:

- ``1 tenant``: every callback of the block is for the provider of one tenant;
- ``50 tenants``: the block's callbacks go round-robin to the providers of 50 tenants (one each per block of 50);
- ``home``: the benchmark's provider without a tenantId (the managed identity's own token), as before tenants.

Every callback is a "known" one (warm.py's steady state: state row read and written, PATCH): a first untimed round
applies each activity once, which also gets every tenant's token. Each figure is the median over rounds of a
block's ``time.process_time()`` per callback; the token requests per tenant are counted by the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from bench.common import (
    REGISTRATION_ID,
    SECRET,
    Infra,
    Out,
    app_functions,
    child_main,
    count_outcomes,
    event_body,
    http_request,
    median,
    outcomes,
    queue_message,
    seed,
    signed_headers,
)

APP_ID = "be4c0a11-0000-4000-8000-0000000000be"
SPREAD = 50
KINDS = ("1 tenant", f"{SPREAD} tenants", "home")


def tenant_id(index: int) -> str:
    return f"{index:08x}-0000-4000-8000-{index:012x}"


def registration_id(index: int) -> str:
    return f"{index:08x}-1111-4111-8111-{index:012x}"


def _settings(infra: Infra) -> None:
    """The app settings of a deployment with SPREAD + 1 customer tenants and the bench provider of its own."""
    providers: dict[str, Any] = {REGISTRATION_ID: {"webhookSecrets": [SECRET]}}
    for index in range(SPREAD + 1):
        providers[registration_id(index)] = {"webhookSecrets": [SECRET], "tenantId": tenant_id(index)}
    os.environ["CONNECTOR_PROVIDERS"] = json.dumps(providers)
    os.environ["CONNECTOR_APP_CLIENT_ID"] = APP_ID
    assert infra.authority_url is not None, "the tenants benchmark needs the sandbox's TLS listener"
    os.environ["AZURE_AUTHORITY_HOST"] = infra.authority_url


def _activities(block: int, stamp: int) -> dict[str, list[tuple[str, str]]]:
    """(registrationId, external id) per callback of a block, by kind; index SPREAD is the one-tenant provider."""
    return {
        "1 tenant": [(registration_id(SPREAD), f"t1-{i}-{stamp}") for i in range(block)],
        f"{SPREAD} tenants": [(registration_id(i % SPREAD), f"t{SPREAD}-{i}-{stamp}") for i in range(block)],
        "home": [(REGISTRATION_ID, f"home-{i}-{stamp}") for i in range(block)],
    }


def _seed(admin: Any, activities: dict[str, list[tuple[str, str]]]) -> None:
    admin.reset()
    admin.register_app(APP_ID, display_name="Bench multi-tenant app")
    by_provider: dict[str, list[str]] = {}
    for pairs in activities.values():
        for reg, ext in pairs:
            by_provider.setdefault(reg, []).append(ext)
    for index in range(SPREAD + 1):
        admin.put_tenant(tenant_id(index))
        admin.grant_consent(tenant_id(index), APP_ID)
        reg = registration_id(index)
        seed(admin, by_provider.get(reg, []), reset=False, registration_id=reg, tenant=tenant_id(index))
    seed(admin, by_provider[REGISTRATION_ID], reset=False)


async def _main(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    _settings(infra)
    count_outcomes()  # before the first callback
    import function_app
    from connector import bootstrap

    assert infra.ca_path is not None
    bootstrap.tls_context().load_verify_locations(cafile=infra.ca_path)  # the sandbox's throwaway CA
    rounds, block = int(params.get("rounds", 7)), int(params.get("block", SPREAD))
    functions = app_functions(function_app.app)
    webhook, queue_fn = functions["course_activity_webhook"], functions["apply_course_activity_update"]
    admin = infra.admin()
    activities = _activities(block, int(time.time()))
    _seed(admin, activities)

    def messages(kind: str, n: int) -> list[Any]:
        made = []
        for reg, ext in activities[kind]:
            body = event_body(ext, n, reg)
            updates = Out()
            response = webhook(http_request(body, signed_headers(body, f"wh-{ext}-{n}"), reg), updates)
            assert response.status_code == 202, response.get_body()
            made += [queue_message(text, f"m-{ext}-{n}") for text in updates.get()]
        return made

    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for r in range(rounds + 1):  # round 0 applies each activity once (and gets every token), untimed
        for kind in KINDS:
            block_messages = messages(kind, r)
            applied_before = outcomes().get("applied", 0)
            started = time.process_time()
            for message in block_messages:
                await queue_fn(message, Out())
            spent = time.process_time() - started
            if outcomes().get("applied", 0) - applied_before != len(block_messages):
                raise RuntimeError(f"not every callback was applied: {outcomes()}")
            if r > 0:
                cpu[kind].append(spent / len(block_messages))
    stats = admin.stats()
    await bootstrap.close()
    admin.close()
    by_tenant = stats["tokenEndpoint"]["byTenant"]
    return {
        "rounds": rounds,
        "block": block,
        "tenants": SPREAD,
        "cpuMs": {
            kind: {"median": median(v) * 1000, "min": min(v) * 1000, "max": max(v) * 1000} for kind, v in cpu.items()
        },
        "tokenRequests": {
            "tenants": len(by_tenant),
            "maxPerTenant": max(t["requests"] for t in by_tenant.values()),
            "managedIdentity": stats["tokenRequests"],
        },
    }


def run(infra: Infra, params: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_main(infra, params))


if __name__ == "__main__":
    child_main(run)
