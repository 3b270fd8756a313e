"""xAPI statements as course platforms really send them, parsed leniently with pydantic.

Real statements bend the spec (see the project notes): `account` without `homePage`, `1`/`0` for booleans,
`version: "2.0.0"`, `mbox` without `mailto:`, progress as a float. Those are accepted and normalised. What cannot be
understood at all (no actor identifier, no verb id, an unreadable timestamp) is rejected, naming the statement's
index and the field.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from connector.domain.events import MAX_ID_LENGTH, FieldError

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_VERSION = re.compile(r"^(1\.0(\.\d+)?|2\.0(\.\d+)?)$")
#: IRIs (activity, verb, openid, homePage) and ids (mbox, account name) are bounded at intake: they are queued, and
#: matched by the provider's contentIdPattern. Real activity IRIs are far shorter; URLs past 2,048 characters break
#: in many clients anyway.
MAX_IRI_LENGTH = 2048
#: Properties an LRS sets itself: not part of a statement's content when comparing two with the same id.
LRS_PROPERTIES = ("stored", "authority", "version")


def _lenient_bool(value: Any) -> Any:
    """edX sends 1/0 (and some send "true"/"false") where xAPI says true/false."""
    if value in (1, 0) and not isinstance(value, float):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


LenientBool = Annotated[bool | None, BeforeValidator(_lenient_bool)]


class Account(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    home_page: str | None = Field(None, alias="homePage", max_length=MAX_IRI_LENGTH)  # Pluralsight leaves it out
    name: str = Field(min_length=1, max_length=MAX_ID_LENGTH)


class Agent(BaseModel):
    """The actor: identified by exactly one of mbox, mbox_sha1sum, openid, account (the first given is used)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    object_type: str | None = Field(None, alias="objectType")
    name: str | None = None
    mbox: str | None = Field(None, max_length=MAX_ID_LENGTH)
    mbox_sha1sum: str | None = Field(None, max_length=MAX_ID_LENGTH)
    openid: str | None = Field(None, max_length=MAX_IRI_LENGTH)
    account: Account | None = None

    @field_validator("mbox")
    @classmethod
    def _mailto(cls, value: str | None) -> str | None:
        if value is None:
            return None
        address = value.strip().removeprefix("mailto:").strip()
        if "@" not in address:
            raise ValueError("must be an email address, e.g. mailto:learner@example.com")
        return f"mailto:{address.lower()}"

    @model_validator(mode="after")
    def _identified(self) -> Agent:
        if not (self.mbox or self.mbox_sha1sum or self.openid or self.account):
            raise ValueError("needs an identifier: mbox, mbox_sha1sum, openid or account")
        return self

    @property
    def email(self) -> str | None:
        return self.mbox.removeprefix("mailto:") if self.mbox else None

    @property
    def key(self) -> str:
        """A stable text naming the learner (never logged; hashed where it names an activity or a cache row)."""
        if self.mbox:
            return self.mbox
        if self.account:
            return f"account:{self.account.home_page or ''}::{self.account.name}"
        if self.mbox_sha1sum:
            return f"sha1:{self.mbox_sha1sum.lower()}"
        return f"openid:{self.openid}"


class Verb(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=MAX_IRI_LENGTH)


class StatementObject(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    object_type: str = Field("Activity", alias="objectType")
    id: str | None = Field(None, max_length=MAX_IRI_LENGTH)

    @model_validator(mode="after")
    def _needs_id(self) -> StatementObject:
        if self.object_type in ("Activity", "StatementRef") and not self.id:
            raise ValueError(f"an {self.object_type} needs an id")
        return self


class Result(BaseModel):
    model_config = ConfigDict(extra="allow")

    completion: LenientBool = None
    success: LenientBool = None
    extensions: dict[str, Any] | None = None


class Context(BaseModel):
    model_config = ConfigDict(extra="allow")

    registration: str | None = None

    @field_validator("registration")
    @classmethod
    def _registration_uuid(cls, value: str | None) -> str | None:
        if value is not None and not UUID.match(value):
            raise ValueError("must be a UUID (it names the course activity)")
        return value.lower() if value else value

    extensions: dict[str, Any] | None = None


class Statement(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    actor: Agent
    verb: Verb
    object: StatementObject
    result: Result | None = None
    context: Context | None = None
    timestamp: datetime | None = None
    stored: datetime | None = None
    version: str | None = None

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is not None and not UUID.match(value):
            raise ValueError("must be a UUID")
        return value.lower() if value else value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and not _VERSION.match(value):
            raise ValueError("must be 1.0.x (or 2.0.0)")
        return value

    @field_validator("timestamp", "stored")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """A timestamp without an offset is taken as UTC, as most LRSs do."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class ParsedStatement(BaseModel):
    """A statement that was understood, with its id (assigned when absent) and its JSON as received."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    statement: Statement
    raw: dict[str, Any]
    id: str

    @property
    def content_hash(self) -> str:
        """What "the same statement" means: its JSON without the id and the properties an LRS sets."""
        content = {k: v for k, v in self.raw.items() if k not in ("id", *LRS_PROPERTIES)}
        return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def parse_statements(data: Any, *, batch: bool) -> list[ParsedStatement]:
    """Parses one statement or an array of them; raises EventValidationError naming index and field."""
    from connector.domain.events import EventValidationError

    items = data if batch else [data]
    if batch and not isinstance(data, list):
        raise EventValidationError([FieldError("body", "is invalid", "must be a statement or an array of statements")])
    if batch and not items:
        raise EventValidationError([FieldError("body", "shouldn't be empty", "send at least one statement")])
    parsed: list[ParsedStatement] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):  # a single statement is statement 0
        if not isinstance(item, dict):
            errors.append(FieldError("statement", "is invalid", "each statement must be a JSON object", index))
            continue
        try:
            statement = Statement.model_validate(item)
        except ValidationError as exc:
            errors.extend(_field_errors(exc, index))
            continue
        parsed.append(ParsedStatement(statement=statement, raw=item, id=statement.id or str(uuid.uuid4())))
    if errors:
        raise EventValidationError(errors)
    return parsed


_VERB_RULE = "every statement needs a verb with an id, an IRI such as http://adlnet.gov/expapi/verbs/completed"
#: What a missing part needs, in place of pydantic's "Field required".
_REQUIRED_RULES = {
    "actor": "every statement needs an actor identified by mbox, mbox_sha1sum, openid or account",
    "verb": _VERB_RULE,
    "verb.id": _VERB_RULE,
    "object": "every statement needs an object with an id, the activity's IRI",
    "actor.account.name": "an account needs a name (the learner's id at the provider)",
}


def _field_errors(exc: ValidationError, index: int) -> list[FieldError]:
    errors: dict[str, FieldError] = {}
    for detail in exc.errors():
        loc = [str(part) for part in detail["loc"] if not str(part).startswith("function-")]
        field = ".".join(loc) or "statement"
        problem = "is required" if detail["type"] == "missing" else "is invalid"
        rule = str(detail.get("msg", "")).removeprefix("Value error, ")
        if detail["type"] == "missing":
            rule = _REQUIRED_RULES.get(field, rule)
        elif detail["type"] == "string_too_long":
            rule = f"must be at most {detail.get('ctx', {}).get('max_length')} characters"
        errors.setdefault(field, FieldError(field, problem, rule, index))  # type: ignore[arg-type]
    return list(errors.values())
