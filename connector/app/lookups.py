"""Finds who and what an xAPI statement is about, to create a missing activity: the learner (an Entra user) and
the learning content. Both answers are cached in the state table, so each is looked up once.

Learner: an email (mbox) is matched against userPrincipalName or mail; an account name against employeeId (as Viva
Learning's own SuccessFactors connector does). Content: learningContents(externalId=…) with the statement's activity
IRI, or the part of it the provider's contentIdPattern captures. What cannot be found is a permanent failure: the
update is dead-lettered with the reason, not retried forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from connector.app.ports import Graph, LookupCache
from connector.domain.failures import GraphFailure, Kind


class _Pattern(Protocol):
    """A compiled contentIdPattern (RE2): what of it the lookup uses."""

    groupindex: Any

    def search(self, text: str) -> Any: ...


@dataclass
class LookupFailed(Exception):
    """Who or what an update is about cannot be found: the update is dead-lettered with this, never retried."""

    code: str
    message: str
    request_id: str | None = None
    status: int = 404

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def reason(self) -> dict[str, Any]:
        return {
            "source": "lookup",
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "requestId": self.request_id,
        }


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Directory:
    def __init__(self, graph: Graph, cache: LookupCache) -> None:
        self._graph = graph
        self._cache = cache

    async def learner_id(self, actor: dict[str, Any]) -> str:
        mbox = actor.get("mbox")
        account = actor.get("account") or {}
        if mbox:
            email = str(mbox).removeprefix("mailto:")
            key, query, advanced = (
                f"mbox:{email}",
                f"userPrincipalName eq {_literal(email)} or mail eq {_literal(email)}",
                False,
            )
            missing = "no Entra user has the statement actor's email as userPrincipalName or mail"
        elif account.get("name"):
            name = str(account["name"])
            key, query, advanced = f"account:{name}", f"employeeId eq {_literal(name)}", True
            missing = "no Entra user has the statement actor's account name as employeeId"
        else:
            raise LookupFailed(
                "learnerNotFound", "the statement's actor has no email (mbox) or account name to find the learner by"
            )
        cached = await self._cache.cached("learner", key)
        if cached:
            return cached
        users = await self._graph.find_users(query, advanced=advanced)
        if not users:
            raise LookupFailed("learnerNotFound", missing)
        if len(users) > 1:
            raise LookupFailed("learnerAmbiguous", "more than one Entra user matches the statement's actor", status=409)
        await self._cache.cache("learner", key, users[0]["id"])
        return str(users[0]["id"])

    async def content_id(self, registration_id: str, activity_iri: str, pattern: _Pattern | None) -> str:
        external = activity_iri
        if pattern is not None:
            found = pattern.search(activity_iri)
            if found is None:
                raise LookupFailed(
                    "contentNotFound", "the provider's contentIdPattern does not match the statement's activity id"
                )
            external = found.group("id") if "id" in pattern.groupindex else found.group(1)
        key = f"{registration_id.lower()}:{external}"
        cached = await self._cache.cached("content", key)
        if cached:
            return cached
        try:
            content = await self._graph.find_content(registration_id, external)
        except GraphFailure as failure:
            if failure.kind is not Kind.NOT_FOUND:
                raise
            message = f"no learning content of this provider has externalId '{external}'"
            raise LookupFailed("contentNotFound", message, failure.request_id) from None
        await self._cache.cache("content", key, content["id"])
        return str(content["id"])
