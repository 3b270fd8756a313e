"""From an xAPI statement to the change it makes to a Viva Learning course activity (or to none).

- launched, initialized, attempted, progressed, resumed: `inProgress`, `startedDateTime` = timestamp;
- a progress extension (cmi5 or video profile), on any verb but the last line's: `inProgress`, `completionPercentage`;
- completed, passed, satisfied, waived, or `result.completion: true`: `completed`, 100 %, `completedDateTime`;
- failed, terminated, abandoned, voided, and verbs that say nothing about progress: nothing.

Progress: an integer is a percentage; a float from 0 to 1 is a ratio (0.5 → 50 %), a larger float a percentage;
the video profile's extension is always a ratio. Verbs are matched by IRI, and otherwise by their last path segment
(`https://example.com/verbs/completed` counts as completed), because providers mint their own IRIs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector.domain.xapi.statements import ParsedStatement

ADL = "http://adlnet.gov/expapi/verbs/"
ADL_W3ID = "https://w3id.org/xapi/adl/verbs/"
CMI5_PROGRESS = "https://w3id.org/xapi/cmi5/result/extensions/progress"
VIDEO_PROGRESS = "https://w3id.org/xapi/video/extensions/progress"
VOIDED = ADL + "voided"

STARTING = {"launched", "initialized", "attempted", "progressed", "resumed"}
COMPLETING = {"completed", "passed", "satisfied", "waived"}
NEUTRAL = {"failed", "terminated", "abandoned", "voided"}


class ProgressError(ValueError):
    """The progress extension holds something that is not a progress: names the extension."""

    def __init__(self, extension: str, rule: str) -> None:
        super().__init__(rule)
        self.field = f"result.extensions[{extension}]"


@dataclass(frozen=True)
class XapiChange:
    """The change one statement makes: the Graph properties it sets, and when it happened."""

    changes: dict[str, Any]
    time: datetime


def verb_name(verb_id: str) -> str:
    """launched, completed, ...: the IRI's last segment, lower-case."""
    return verb_id.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1].lower()


def change_of(parsed: ParsedStatement, received: datetime) -> XapiChange | None:
    """The statement's change, or None when it says nothing about progress."""
    statement = parsed.statement
    when = statement.timestamp or statement.stored or received
    stamp = when.isoformat()
    verb = verb_name(statement.verb.id)
    if statement.verb.id == VOIDED or (verb in NEUTRAL and not (statement.result and statement.result.completion)):
        return None
    if statement.object.object_type != "Activity":
        return None
    if verb in COMPLETING or (statement.result is not None and statement.result.completion is True):
        return XapiChange({"status": "completed", "completionPercentage": 100, "completedDateTime": stamp}, when)
    changes: dict[str, Any] = {}
    if verb in STARTING:
        changes = {"status": "inProgress", "startedDateTime": stamp}
    percent = progress_of(statement.result.extensions if statement.result else None)
    if percent is not None:
        changes.update({"status": "inProgress", "completionPercentage": percent})
    return XapiChange(changes, when) if changes else None


def progress_of(extensions: dict[str, Any] | None) -> int | None:
    if not extensions:
        return None
    for extension, ratio_only in ((CMI5_PROGRESS, False), (VIDEO_PROGRESS, True)):
        if extension in extensions:
            return _percent(extension, extensions[extension], ratio_only)
    return None


def _percent(extension: str, value: Any, ratio_only: bool) -> int:
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            raise ProgressError(extension, "must be a number") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProgressError(extension, "must be a number")
    if ratio_only or (isinstance(value, float) and value <= 1):
        value = value * 100
    if not 0 <= value <= 100:
        raise ProgressError(extension, "must be a percentage from 0 to 100, or a ratio from 0 to 1")
    percent: int = round(value)
    return percent


def external_id(parsed: ParsedStatement, mode: str) -> str:
    """The Graph externalcourseActivityId: the cmi5 registration when present (mode "registration"), else an id
    derived from the learner and the activity, the same for every statement of that pair and naming no one."""
    statement = parsed.statement
    registration = statement.context.registration if statement.context else None
    if mode == "registration" and registration:
        return registration.lower()
    named = f"{statement.actor.key}\n{statement.object.id}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(named).hexdigest()
    return f"xapi-{digest[:40]}"
