"""Finds who and what an xAPI statement is about, to create a missing activity: the learner (an Entra user) and
the learning content. Both answers are cached in the state table, so each is looked up once.

Learner: an email (mbox) is matched against userPrincipalName or mail; an account name against employeeId (as Viva
Learning's own SuccessFactors connector does). Content: learningContents(externalId=…) with the statement's activity
IRI, or the part of it the provider's contentIdPattern captures. What cannot be found is a permanent failure: the
update is dead-lettered with the reason, not retried forever.
"""

from __future__ import annotations

import re
from typing import Any

from connector.adapters.activity_store import StateStore
from connector.adapters.graph import GraphFailure, GraphGateway


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Directory:
    def __init__(self, gateway: GraphGateway, store: StateStore) -> None:
        self._gateway = gateway
        self._store = store

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
            raise GraphFailure(
                404,
                "learnerNotFound",
                "the statement's actor has no email (mbox) or account name to find the learner by",
            )
        cached = await self._store.cached("learner", key)
        if cached:
            return cached
        users = await self._gateway.find_users(query, advanced=advanced)
        if not users:
            raise GraphFailure(404, "learnerNotFound", missing)
        if len(users) > 1:
            raise GraphFailure(409, "learnerAmbiguous", "more than one Entra user matches the statement's actor")
        await self._store.cache("learner", key, users[0]["id"])
        return str(users[0]["id"])

    async def content_id(self, registration_id: str, activity_iri: str, pattern: re.Pattern[str] | None) -> str:
        external = activity_iri
        if pattern is not None:
            found = pattern.search(activity_iri)
            if found is None:
                raise GraphFailure(
                    404, "contentNotFound", "the provider's contentIdPattern does not match the statement's activity id"
                )
            external = found.group("id") if "id" in pattern.groupindex else found.group(1)
        key = f"{registration_id.lower()}:{external}"
        cached = await self._store.cached("content", key)
        if cached:
            return cached
        try:
            content = await self._gateway.find_content(registration_id, external)
        except GraphFailure as failure:
            if failure.status == 404:
                raise GraphFailure(
                    404,
                    "contentNotFound",
                    f"no learning content of this provider has externalId '{external}'",
                    failure.request_id,
                ) from None
            raise
        await self._store.cache("content", key, content["id"])
        return str(content["id"])
