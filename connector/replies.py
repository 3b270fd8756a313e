"""What an HTTP function answers, in the contract's shape: `{"error": {"code", "message", "details"}}` on failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from connector.events import FieldError

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
