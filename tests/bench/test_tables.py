"""The benchmarks' hand-made table calls (bench/tables.py) really work against Azurite: Shared Key signatures it
accepts (and a wrong key it refuses), rows that round-trip, ETags that guard replaces."""

from __future__ import annotations

import base64
import hashlib
import hmac

import httpx
import pytest

from bench.tables import (
    SdkTable,
    TableHttp,
    authorization,
    state_entity,
    state_key,
    storage_session,
    string_to_sign,
    tls_context,
)
from devtools.azurite import ACCOUNT_KEY, ACCOUNT_NAME


def test_the_string_to_sign_is_the_table_services_with_the_account_twice_for_path_style_urls():
    path = f"/{ACCOUNT_NAME}/bench(PartitionKey='p',RowKey='r')"
    to_sign = string_to_sign("PUT", "application/json", "Thu, 26 Nov 2026 18:27:25 GMT", ACCOUNT_NAME, path)
    assert to_sign == (
        "PUT\n\napplication/json\nThu, 26 Nov 2026 18:27:25 GMT\n"
        f"/{ACCOUNT_NAME}/{ACCOUNT_NAME}/bench(PartitionKey='p',RowKey='r')"
    )
    key = base64.b64decode(ACCOUNT_KEY)
    digest = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    assert authorization(key, ACCOUNT_NAME, to_sign) == f"SharedKey {ACCOUNT_NAME}:{digest}"


def test_rows_are_sized_like_the_apps():
    row = state_entity("wrawhttp-known-1-7-1764181645", 1, graph_id="g-x", applied=True)
    assert row["RowKey"] == state_key("ext:wrawhttp-known-1-7-1764181645")
    assert 400 <= len(row["merged"]) <= 600
    assert 220 <= len(row["applied"]) <= 320
    assert len(row) >= 18


@pytest.mark.e2e
async def test_hand_signed_calls_round_trip_through_azurite(azurite):
    async with httpx.AsyncClient() as http:
        table = TableHttp(http, azurite.connection_string, "benchtablestest")
        assert await table.create_table() in (201, 409)
        assert await table.create_table() == 409
        assert await table.signing_check() == {"rightKey": 404, "wrongKey": 403}

        row = state_entity("rt-1", 0)
        assert await table.get(row["PartitionKey"], row["RowKey"]) == (None, None)
        etag = await table.insert(row)
        read, read_etag = await table.get(row["PartitionKey"], row["RowKey"])
        assert read is not None
        read.pop("Timestamp")
        assert (read, read_etag) == (row, etag)

        applied = state_entity("rt-1", 0, graph_id="g-rt-1", applied=True)
        new_etag = await table.replace(applied, etag)
        assert new_etag != etag
        with pytest.raises(RuntimeError, match="412"):
            await table.replace(applied, etag)  # stale: another writer's change is never overwritten
        assert table.statuses["PUT 204"] == 1
        assert table.statuses["PUT 412"] == 1

    session = storage_session(tls_context())
    try:
        sdk = SdkTable(session, azurite.connection_string, "benchtablestest")
        stored, stored_etag = await sdk.get(applied["PartitionKey"], applied["RowKey"])
        await sdk.close()
    finally:
        await session.close()
    assert stored is not None
    assert stored_etag == new_etag
    assert {k: v for k, v in stored.items() if k != "Timestamp"} == applied
