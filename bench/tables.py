"""The table calls of the baselines that make them: by hand with raw ``httpx`` (``TableHttp``), or with
``azure-data-tables`` on the app's own transport settings (``SdkTable``); both with one interface (``get``,
``insert``, ``replace``) and both writing rows shaped and sized like the app's (``state_entity``).

``TableHttp``: entity reads, inserts and ETag-guarded replaces as plain HTTP requests, signed with the account key.
Authorization is Shared Key for the Table service (Microsoft's "Authorize with Shared Key", section "Shared Key
format for the Table service"), which, unlike the Blob and Queue services' format, signs no ``x-ms-`` headers::

    StringToSign = VERB + "\\n" + Content-MD5 + "\\n" + Content-Type + "\\n" + Date + "\\n" + CanonicalizedResource
    Authorization = "SharedKey " + account + ":" + base64(HMAC-SHA256(base64decode(key), UTF-8(StringToSign)))

Date is the ``x-ms-date`` header's value when one is sent (it is, here); CanonicalizedResource is ``/`` + the
account name + the request's encoded URI path (+ ``?comp=...``, never used here). Azurite's URLs are path-style,
``http://127.0.0.1:<port>/devstoreaccount1/<table>(...)``, so the account name appears twice:
``/devstoreaccount1/devstoreaccount1/<table>(PartitionKey='p',RowKey='r')``. The path signed is the one httpx will
send (``request.url.raw_path``), so that quoting can never make the signature and the request disagree.
``signing_check`` shows that Azurite refuses a wrong signature (403) and takes ours.

Every answer's status is tallied by method (``GET 200``, ``GET 404``, ``POST 204``, ``PUT 204``, ...), and any
status other than the expected ones raises, so a baseline that silently failed its table calls cannot look cheap.

``SdkTable``: the best ``azure-data-tables`` can do, built as connector/bootstrap.py builds the app's clients: one
``aiohttp.ClientSession`` (TLS context from certifi, ``trust_env=False`` so that aiohttp does not read ~/.netrc on
every request, no cookie jar, no decompression) passed as ``AioHttpTransport(session=..., session_owner=False)``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from bench.common import ASSIGNMENT, GRAPH_SCOPE, REGISTRATION_ID, patch_body

VERSION = "2019-02-02"  # what azure-data-tables 12.x sends
ACCEPT = "application/json;odata=nometadata"
JSON = "application/json"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date() -> str:
    """Now as an RFC 1123 date (``Tue, 26 Nov 2026 18:27:25 GMT``), whatever the locale."""
    t = time.gmtime()
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def storage_settings(connection_string: str) -> tuple[str, bytes, str]:
    """(account name, decoded key, table endpoint) from a storage connection string with an account key."""
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    account = parts["AccountName"]
    scheme, suffix = parts.get("DefaultEndpointsProtocol", "https"), parts.get("EndpointSuffix", "core.windows.net")
    endpoint = parts.get("TableEndpoint") or f"{scheme}://{account}.table.{suffix}"
    return account, base64.b64decode(parts["AccountKey"]), endpoint.rstrip("/")


def string_to_sign(method: str, content_type: str, date: str, account: str, raw_path: str) -> str:
    """Shared Key for the Table service (Content-MD5 is never sent here, so its line is empty)."""
    return f"{method}\n\n{content_type}\n{date}\n/{account}{raw_path}"


def authorization(key: bytes, account: str, to_sign: str) -> str:
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
    return f"SharedKey {account}:{signature}"


class TableHttp:
    """One table over a caller's ``httpx.AsyncClient`` (shared with the Graph calls: one pool, one TLS context)."""

    def __init__(self, http: Any, connection_string: str, table: str, *, key: bytes | None = None) -> None:
        self._http = http
        self._connection_string = connection_string
        self._account, self._key, endpoint = storage_settings(connection_string)
        if key is not None:
            self._key = key
        self._endpoint = endpoint
        self._table = table
        self._table_url = f"{endpoint}/{table}"
        self.statuses: Counter[str] = Counter()

    def _entity_url(self, partition_key: str, row_key: str) -> str:
        def literal(value: str) -> str:  # an OData string literal in a URL path: quotes doubled, then escaped
            return quote(value.replace("'", "''"), safe="")

        return f"{self._table_url}(PartitionKey='{literal(partition_key)}',RowKey='{literal(row_key)}')"

    async def _send(self, method: str, url: str, *, body: dict[str, Any] | None = None, **headers: str) -> Any:
        content_type = JSON if body is not None else ""
        date = http_date()
        headers.update({"x-ms-date": date, "x-ms-version": VERSION, "DataServiceVersion": "3.0", "Accept": ACCEPT})
        if body is not None:
            headers["Content-Type"] = content_type
        request = self._http.build_request(
            method, url, headers=headers, content=json.dumps(body).encode() if body is not None else None
        )
        path = request.url.raw_path.decode().partition("?")[0]
        request.headers["Authorization"] = authorization(
            self._key, self._account, string_to_sign(method, content_type, date, self._account, path)
        )
        response = await self._http.send(request)
        self.statuses[f"{method} {response.status_code}"] += 1
        return response

    @staticmethod
    def _expect(response: Any, *statuses: int) -> None:
        if response.status_code not in statuses:
            raise RuntimeError(
                f"Azurite answered {response.status_code} to {response.request.method} {response.request.url}: "
                f"{response.text[:500]}"
            )

    async def create_table(self) -> int:
        """201 created, or 409 when it exists already."""
        response = await self._send("POST", f"{self._endpoint}/Tables", body={"TableName": self._table})
        self._expect(response, 201, 204, 409)
        return int(response.status_code)

    async def get(self, partition_key: str, row_key: str) -> tuple[dict[str, Any] | None, str | None]:
        """(entity, ETag), or (None, None) when there is no such row."""
        response = await self._send("GET", self._entity_url(partition_key, row_key))
        if response.status_code == 404:
            return None, None
        self._expect(response, 200)
        return response.json(), response.headers["etag"]

    async def insert(self, entity: dict[str, Any]) -> str:
        """Inserts the row (Prefer: return-no-content, so 204); returns its ETag."""
        response = await self._send("POST", self._table_url, body=entity, Prefer="return-no-content")
        self._expect(response, 204)
        return str(response.headers["etag"])

    async def replace(self, entity: dict[str, Any], etag: str) -> str:
        """Replaces the row if its ETag is still ``etag`` (412 otherwise, which raises); returns the new ETag."""
        url = self._entity_url(entity["PartitionKey"], entity["RowKey"])
        response = await self._send("PUT", url, body=entity, **{"If-Match": etag})
        self._expect(response, 204)
        return str(response.headers["etag"])

    async def signing_check(self) -> dict[str, int]:
        """The same read signed with the right key and with a wrong one: Azurite must answer 404 (no such row)
        and 403 (signature refused), which shows that it checks signatures and that ours pass."""
        url = self._entity_url("signing-check", "absent")
        good = (await self._send("GET", url)).status_code
        wrong = TableHttp(self._http, self._connection_string, self._table, key=hashlib.sha256(self._key).digest())
        bad = (await wrong._send("GET", url)).status_code
        if (good, bad) != (404, 403):
            raise RuntimeError(f"Shared Key check: right key answered {good} (want 404), wrong key {bad} (want 403)")
        return {"rightKey": int(good), "wrongKey": int(bad)}


def endpoint_port(connection_string: str) -> int | None:
    return urlsplit(storage_settings(connection_string)[2]).port


# --- the same calls with azure-data-tables -------------------------------------------------------------------


def tls_context() -> Any:
    """What connector/bootstrap.py's ``tls_context`` builds (once per process there, once per baseline here)."""
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def storage_session(ssl_context: Any) -> Any:
    """The aiohttp session connector/bootstrap.py's ``_storage_options`` gives every storage client."""
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ssl_context),
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )


class SdkTable:
    """One table through ``azure.data.tables.aio.TableClient`` on a shared session (not owned: close it yourself)."""

    def __init__(self, session: Any, connection_string: str, table: str) -> None:
        from azure.core.pipeline.transport import AioHttpTransport
        from azure.data.tables.aio import TableClient

        transport = AioHttpTransport(session=session, session_owner=False)
        self._client = TableClient.from_connection_string(connection_string, table, transport=transport)

    async def create_table(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            await self._client.create_table()

    async def get(self, partition_key: str, row_key: str) -> tuple[dict[str, Any] | None, str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = await self._client.get_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return None, None
        return entity, entity.metadata["etag"]

    async def insert(self, entity: dict[str, Any]) -> str:
        return str((await self._client.create_entity(entity))["etag"])

    async def replace(self, entity: dict[str, Any], etag: str) -> str:
        from azure.core import MatchConditions

        metadata = await self._client.update_entity(
            entity, mode="replace", etag=etag, match_condition=MatchConditions.IfNotModified
        )
        return str(metadata["etag"])

    async def close(self) -> None:
        await self._client.close()


# --- the rows ----------------------------------------------------------------------------------------------


def state_key(activity_key: str) -> str:
    """The row key of an activity, hashed as the app hashes it (connector/adapters/activity_store.py ``row_key``)."""
    return hashlib.sha256(activity_key.encode()).hexdigest()


def state_entity(ext: str, n: int, *, graph_id: str | None = None, applied: bool = False) -> dict[str, Any]:
    """The row of an activity after its callbacks 0..n, with the properties of connector/adapters/activity_store.py's
    ``_to_entity`` and about their sizes: ``merged`` (values and stamps, ~470 characters), ``applied`` (~260),
    ``seen`` and ``recent`` growing by one event each, the ids and times; before the PATCH (``applied=False``)
    or after it."""
    changes = patch_body(n)
    del changes["@odata.type"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    events = [f"wh-{ext}-{i}" for i in range(n + 1)]
    stamps = {k: [now, 0, events[-1]] for k in ("assignedDateTime", "dueDateTime", "notes")}
    entity: dict[str, Any] = {
        "PartitionKey": REGISTRATION_ID,
        "RowKey": state_key(f"ext:{ext}"),
        "registrationId": REGISTRATION_ID,
        "merged": json.dumps({"values": changes, "stamps": stamps}),
        "version": n + 1,
        "applied": json.dumps(changes if applied else {}),
        "appliedVersion": n + 1 if applied else n,
        "seen": json.dumps([hashlib.sha256(e.encode()).hexdigest()[:20] for e in events]),
        "recent": json.dumps(events[-10:]),
        "unsure": False,
        "status": "applied" if applied else "pending",
        "activityKey": f"ext:{ext}",
        "odataType": ASSIGNMENT,
        "externalId": ext,
        "lastAttemptAt": now,
    }
    if graph_id is not None:
        entity["graphId"] = graph_id
    if applied:
        entity.update(lastAppliedAt=now, lastRequestId=f"req-{ext}-{n}")
    return entity


# --- one callback by hand -------------------------------------------------------------------------------------


PROVIDER_PATH = f"/employeeExperience/learningProviders/{REGISTRATION_ID}/learningCourseActivities"


async def callback_by_hand(
    http: Any,
    credential: Any,
    table: Any,
    ext: str,
    n: int,
    *,
    reads: int = 1,
    writes: int = 2,
    known: bool = False,
    remembered: str | None = None,
    written: dict[str, dict[str, Any]] | None = None,
) -> str:
    """What a hand-written worker does for callback ``n`` of activity ``ext``; returns the Graph id.

    With a table (``TableHttp`` or ``SdkTable``), as many reads and writes as the app was counted making: the
    activity's row read; ``writes - 1`` writes of it before the PATCH (insert, then replace with If-Match);
    the lookup GET when the row holds no Graph id; ``reads - 1`` reads of the row keyed by the Graph id (the app's
    check for a row made by callbacks naming the Graph id: absent); the PATCH; the row written after it. Without a
    table, only the Graph calls (``remembered`` is the Graph id a worker would keep in memory). ``known``: the
    activity was applied before, so its row must be read back with its Graph id (else this raises). ``http`` is an
    ``httpx.AsyncClient`` whose base URL is Graph's; ``written`` collects the last row written per row key."""
    state: dict[str, Any] | None = None
    etag: str | None = None
    key = state_key(f"ext:{ext}")
    if table is not None and reads >= 1:
        state, etag = await table.get(REGISTRATION_ID, key)
        if known and (state is None or "graphId" not in state):
            raise RuntimeError(f"the row of {ext} written by its first callback was not read back: {state}")
    gid = state.get("graphId") if state is not None else remembered
    if table is not None:
        for _ in range(writes - 1):
            row = state_entity(ext, n, graph_id=gid)
            etag = await (table.insert(row) if etag is None else table.replace(row, etag))
            if written is not None:
                written[key] = row
    headers = {"Authorization": f"Bearer {(await credential.get_token(GRAPH_SCOPE)).token}"}
    if gid is None:
        found = await http.get(f"{PROVIDER_PATH}(externalcourseActivityId='{ext}')", headers=headers)
        found.raise_for_status()
        gid = str(found.json()["id"])
    if table is not None:
        for _ in range(reads - 1):
            await table.get(REGISTRATION_ID, state_key(f"id:{gid}"))
    patched = await http.patch(f"{PROVIDER_PATH}/{gid}", json=patch_body(n), headers=headers)
    if patched.status_code != 204:
        raise RuntimeError(f"raw PATCH answered {patched.status_code}")
    if table is not None and writes >= 1:
        row = state_entity(ext, n, graph_id=gid, applied=True)
        await (table.insert(row) if etag is None else table.replace(row, etag))
        if written is not None:
            written[key] = row
    return gid
