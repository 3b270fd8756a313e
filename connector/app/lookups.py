"""Finds who and what an activity to create is about: the learner (and an assignment's assigner), Entra users, and
the learning content. Every answer is cached (LookupCache), so each is asked of Graph once.

A user is named by the Entra object id (used as it is), or by a userPrincipalName or email (matched against
userPrincipalName or mail), or, where the provider's `learnerMatch` is "employeeId", by the employee id (as Viva
Learning's own SuccessFactors connector matches). An xAPI statement's actor: its email (mbox), else its account name
as an employee id. Content: the provider's own externalId (learningContents(externalId=…)), else, when no content has
that externalId, the value as Viva Learning's content id. What cannot be found is a LookupFailed: the update is
dead-lettered with it, naming the field, never retried forever. Messages never repeat the value: it may be an email.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from connector.app.ports import Graph, LookupCache
from connector.domain.failures import GraphFailure, Kind

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class _Pattern(Protocol):
    """A compiled contentIdPattern (RE2): what of it the lookup uses."""

    groupindex: Any

    def search(self, text: str) -> Any: ...


@dataclass
class LookupFailed(Exception):
    """Who or what an update is about cannot be found: the update is dead-lettered with this, never retried."""

    field: str
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
            "field": self.field,
            "requestId": self.request_id,
        }


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Directory:
    def __init__(self, graph: Graph, cache: LookupCache, *, learner_match: str = "email") -> None:
        self._graph = graph
        self._cache = cache
        self._learner_match = learner_match

    async def user_id(self, value: str, field: str) -> str:
        """An Entra user's object id from what an event's `field` (learnerUserId, assignerUserId) names."""
        if _GUID.match(value):
            return value
        if self._learner_match == "employeeId":
            return await self._user(f"employeeId:{value}", f"employeeId eq {_literal(value)}", field, "employeeId")
        if "@" not in value:
            raise LookupFailed(
                field,
                _code(field),
                f"{field} must be an Entra object id, a userPrincipalName or an email (the provider's learnerMatch is "
                'email; set it to "employeeId" to match employee ids)',
                status=400,
            )
        query = f"userPrincipalName eq {_literal(value)} or mail eq {_literal(value)}"
        return await self._user(f"mbox:mailto:{value.lower()}", query, field, "userPrincipalName or mail")

    async def learner_id(self, actor: dict[str, Any]) -> str:
        """An xAPI statement actor's Entra user: by its email (mbox), else its account name as an employee id."""
        mbox = actor.get("mbox")
        account = actor.get("account") or {}
        if mbox:
            email = str(mbox).removeprefix("mailto:")
            query = f"userPrincipalName eq {_literal(email)} or mail eq {_literal(email)}"
            return await self._user(f"mbox:{mbox}", query, "actor", "userPrincipalName or mail")
        if account.get("name"):
            name = str(account["name"])
            return await self._user(f"account:{name}", f"employeeId eq {_literal(name)}", "actor", "employeeId")
        message = "the statement's actor has no email (mbox) or account name to find the learner by"
        raise LookupFailed("actor", "learnerNotFound", message)

    async def _user(self, key: str, query: str, field: str, matched: str) -> str:
        cached = await self._cache.cached("learner", key)
        if cached:
            return cached
        users = await self._graph.find_users(query, advanced=matched == "employeeId")
        if not users:
            raise LookupFailed(field, _code(field), f"no Entra user has the event's {field} as {matched}")
        if len(users) > 1:
            message = f"more than one Entra user has the event's {field} as {matched}"
            raise LookupFailed(field, _code(field).replace("NotFound", "Ambiguous"), message, status=409)
        await self._cache.cache("learner", key, users[0]["id"])
        return str(users[0]["id"])

    async def content_id(self, registration_id: str, value: str, field: str = "learningContentId") -> str:
        """Viva Learning's content id from the provider's content externalId, or the id itself."""
        key = f"{registration_id.lower()}:{value}"
        cached = await self._cache.cached("content", key)
        if cached:
            return cached
        try:
            content = await self._graph.find_content(registration_id, value)
        except GraphFailure as failure:
            if failure.kind is not Kind.NOT_FOUND:
                raise
            if _GUID.match(value):
                return value  # no content has it as its externalId: Viva Learning's own id
            message = f"no learning content of this provider has the event's {field} as its externalId"
            raise LookupFailed(field, "contentNotFound", message, failure.request_id) from None
        await self._cache.cache("content", key, content["id"])
        return str(content["id"])

    async def statement_content_id(self, registration_id: str, activity_iri: str, pattern: _Pattern | None) -> str:
        """The content an xAPI statement's activity IRI names, through the provider's contentIdPattern."""
        external = activity_iri
        if pattern is not None:
            found = pattern.search(activity_iri)
            if found is None:
                message = "the provider's contentIdPattern does not match the statement's activity id"
                raise LookupFailed("object.id", "contentNotFound", message)
            external = found.group("id") if "id" in pattern.groupindex else found.group(1)
        return await self.content_id(registration_id, external, "object.id")


def _code(field: str) -> str:
    return "assignerNotFound" if field == "assignerUserId" else "learnerNotFound"
