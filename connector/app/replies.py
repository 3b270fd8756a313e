"""What an HTTP function answers, in the contract's shape: `{"error": {"code", "message", "details"}}` on failure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.domain.envelope import MAX_MESSAGE_BYTES
from connector.domain.events import FieldError

MAX_DETAILS = 100
#: The most a request body may hold (webhook and LRS alike): 100 events of Graph's size fit many times over.
MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Reply:
    """The status, the JSON body, extra headers, and the queue messages to emit (only when accepting)."""

    status: int
    body: Any
    messages: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def error_reply(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return Reply(status, {"error": error}, headers=headers or {})


def bad_request(errors: list[FieldError], message: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """400: the first problem as the message (unless given), one detail per bad field (at most 100)."""
    details = [e.to_detail() for e in errors[:MAX_DETAILS]]
    return error_reply(400, "badRequest", message or errors[0].message, details, headers)


def withheld_body(headers: Mapping[str, str], body: bytes, reply_headers: dict[str, str] | None = None) -> Reply | None:
    """411 for a chunked request that arrived empty: the Functions host passes a body only with Content-Length, so
    the function would otherwise judge an empty body (a signature that matches nothing, a missing statement)."""
    if body or "chunked" not in headers.get("transfer-encoding", "").lower():
        return None
    return error_reply(
        411,
        "lengthRequired",
        "Send the body with a Content-Length header: a chunked request (Transfer-Encoding: chunked) reaches the "
        "connector without its body.",
        headers=reply_headers,
    )


def first_oversized(messages: Sequence[str]) -> int | None:
    """The index of the first message too large for the queue, measured before any is queued (all or nothing)."""
    limit = MAX_MESSAGE_BYTES
    return next(
        (
            index
            for index, message in enumerate(messages)
            if len(message) * 4 > limit and len(message.encode()) > limit  # the cheap bound first
        ),
        None,
    )
