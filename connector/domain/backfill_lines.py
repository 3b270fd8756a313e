"""A backfill file read one record at a time, in constant memory, each record accepted or rejected with the
webhook's wording (connector.domain.events) or the LRS's (connector.domain.xapi).

The formats, told apart by their content (`detect`):
- `jsonl`: native events, one per line: the webhook's contract, `"@removed": {"reason": "deleted"}` included;
- `csv`: a header row of property names and one event per row; `dueDateTime` with a `dueDateTimeZone` column makes
  Graph's dateTimeTimeZone (without one, `dueDateTime` needs an offset); `notes` is text; `completionPercentage` an
  integer; `@removed` says `deleted`; an empty cell is an absent property;
- `xapi-jsonl`, `xapi-array`: xAPI statements, one per line or in a JSON array, as LRS exports write them.

A format is one function from the file's bytes to its `Checked` records (FORMATS); `detect` says which applies.

History must never override a newer live callback. A record's own time (an `eventTime` property or column, ISO 8601
with an offset, taken out of the event before it is validated; a statement's timestamp) orders it among the live
callbacks; a record without one ranks below all of them (merge.EARLIEST's time) and after the file's earlier lines
(its line as the sequence).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import IO, Any

from connector.domain import timezones
from connector.domain.events import (
    CHANGEABLE,
    IDENTITY,
    RULES,
    EventValidationError,
    FieldError,
    Problem,
    validate_events_json,
)
from connector.domain.xapi.mapping import ProgressError, XapiChange, change_of
from connector.domain.xapi.statements import ParsedStatement, parse_statements

EVENT_TIME = "eventTime"
DUE_TIME_ZONE = "dueDateTimeZone"
#: How far ahead of this machine's clock a record's own time may be (clocks differ); further is a mistake that would
#: let the record override every live callback until then.
CLOCK_SKEW = timedelta(minutes=5)
#: A statement in a JSON array larger than this is not read (a real statement is a few KiB).
MAX_ITEM_CHARS = 1024 * 1024
_CHUNK = 64 * 1024
_EVENT_TIME_RULE = (
    "must be an ISO 8601 date-time with an offset, not in the future, e.g. 2021-05-11T22:57:17+00:00: when the "
    "record happened (without it the record ranks below every live callback)"
)
_CSV_COLUMNS = frozenset(
    {"@odata.type", "@removed", EVENT_TIME, DUE_TIME_ZONE}
    | {name for names in (*CHANGEABLE.values(), *IDENTITY.values()) for name in names}
)
_DATE_TIME_RULE = RULES["completedDateTime"].removesuffix(", e.g. 2021-05-11T22:57:17+00:00")
_INTEGER = re.compile(r"\s*[+-]?\d{1,9}\s*")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, as surrogateescape decodes them


class FileFormatError(ValueError):
    """The whole file cannot be read as a backfill file: what is wrong and what would be right."""


@dataclass(frozen=True)
class Context:
    """What checking a record needs besides the record: the provider it is for, and this machine's clock."""

    registration_id: str
    now: datetime


@dataclass(frozen=True)
class Checked:
    """One record of a file: where it is, and what it holds or why it is rejected."""

    line: int
    """Where it starts (1-based), for people."""
    item: int | None = None
    """Its position in a JSON array (1-based); None in a format of one record per line."""
    errors: tuple[FieldError, ...] = ()
    event: dict[str, Any] | None = None
    """A native event as validated (JSON names, parsed values), `eventTime` taken out."""
    event_time: datetime | None = None
    """The record's own time; None ranks it below every live callback."""
    statement: ParsedStatement | None = None
    change: XapiChange | None = None
    """What the statement changes; None for a statement that says nothing about progress (nothing to enqueue)."""

    @property
    def number(self) -> int:
        """Names the record within its file (with the file's content hash, its event id): line or array position."""
        return self.item if self.item is not None else self.line

    @property
    def accepted(self) -> bool:
        return not self.errors

    @property
    def changes_something(self) -> bool:
        return self.accepted and (self.event is not None or self.change is not None)

    def where(self, file: str) -> str:
        return f"{file}:{self.line}" + (f" (statement {self.item})" if self.item is not None else "")

    def report(self, file: str) -> dict[str, Any]:
        """A rejected record as `--report` writes it: the file, the line, and the errors as the webhook's 400."""
        row: dict[str, Any] = {"file": file, "line": self.line}
        if self.item is not None:
            row["statement"] = self.item
        row["errors"] = [error.to_detail() for error in self.errors]
        return row


def event_id(content_hash: str, number: int) -> str:
    """A record's event id: the same file content gives the same ids, so the worker recognises a second run."""
    return f"backfill-{content_hash[:32]}-{number}"


# --- Checking one record. ---


def check_event(data: bytes | dict[str, Any], line: int, context: Context) -> Checked:
    """A native event, as JSON text or as an object: its own time taken out, then validated as the webhook does."""
    errors: list[FieldError] = []
    event_time = None
    if isinstance(data, dict) or b'"eventTime"' in data:  # the fast path hands the bytes to pydantic untouched
        try:
            parsed = json.loads(data) if isinstance(data, bytes) else data
        except (ValueError, RecursionError):
            parsed = None  # pydantic names the JSON error below
        if isinstance(parsed, dict) and EVENT_TIME in parsed:
            parsed = dict(parsed)
            own = _own_time(parsed.pop(EVENT_TIME), context)
            if isinstance(own, FieldError):
                errors.append(own)
            else:
                event_time = own
        if isinstance(parsed, dict):
            data = json.dumps(parsed).encode("utf-8", "surrogatepass")
    try:
        (event,) = validate_events_json(data, context.registration_id, batch=False)  # type: ignore[arg-type]
    except EventValidationError as exc:
        return Checked(line, errors=(*errors, *exc.errors))
    if errors:
        return Checked(line, errors=tuple(errors))
    return Checked(line, event=event, event_time=event_time)


def check_statement(data: bytes | str | Any, line: int, context: Context, item: int | None = None) -> Checked:
    """An xAPI statement, parsed as the LRS parses it; history needs its time (timestamp, else the LRS's stored)."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            return Checked(line, item, errors=(_invalid_json(exc),))
    try:
        (parsed,) = parse_statements(data, batch=False)
    except EventValidationError as exc:
        return Checked(line, item, errors=tuple(replace(error, index=None) for error in exc.errors))
    when = parsed.statement.timestamp or parsed.statement.stored
    if when is None:
        rule = "a statement from history needs its timestamp (or the LRS's stored time): it orders the statement"
        return Checked(line, item, errors=(FieldError("timestamp", "is required", rule),))
    if _in_future(when, context):
        return Checked(line, item, errors=(FieldError("timestamp", "is invalid", "must not be in the future"),))
    try:
        change = change_of(parsed, when)
    except ProgressError as exc:
        return Checked(line, item, errors=(FieldError(exc.field, "is invalid", str(exc)),))
    return Checked(line, item, statement=parsed, change=change, event_time=when)


def _own_time(value: Any, context: Context) -> datetime | FieldError:
    if not isinstance(value, str) or not value.strip():
        problem: Problem = "shouldn't be empty" if value is None or isinstance(value, str) else "is invalid"
        return FieldError(EVENT_TIME, problem, _EVENT_TIME_RULE)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return FieldError(EVENT_TIME, "is invalid", _EVENT_TIME_RULE)
    if moment.tzinfo is None or moment.year < 2 or _in_future(moment, context):
        return FieldError(EVENT_TIME, "is invalid", _EVENT_TIME_RULE)
    return moment


def _in_future(moment: datetime, context: Context) -> bool:
    try:
        return moment > context.now + CLOCK_SKEW
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the calendar in UTC
        return True


def _invalid_json(exc: BaseException) -> FieldError:
    problem = "is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc).split(":")[0]
    return FieldError("body", "is invalid", f"must be one JSON object ({problem})")


# --- The formats. ---


def read_event_lines(stream: IO[bytes], context: Context) -> Iterator[Checked]:
    """`jsonl`: one native event per line; blank lines are skipped."""
    for line, text in _lines(stream):
        yield check_event(text, line, context)


def read_statement_lines(stream: IO[bytes], context: Context) -> Iterator[Checked]:
    """`xapi-jsonl`: one xAPI statement per line; blank lines are skipped."""
    for line, text in _lines(stream):
        yield check_statement(text, line, context)


def read_statement_array(stream: IO[bytes], context: Context) -> Iterator[Checked]:
    """`xapi-array`: a JSON array of xAPI statements, read element by element. An element that is not JSON ends the
    file's reading there (nothing after it can be found): it is rejected, with what follows it."""
    for line, item, value in _array_items(_text(stream)):
        if isinstance(value, FieldError):
            yield Checked(line, item, errors=(value,))
        else:
            yield check_statement(value, line, context, item)


def read_csv(stream: IO[bytes], context: Context) -> Iterator[Checked]:
    """`csv`: a header row of property names, then one event per row."""
    text = _text(stream)
    rows = csv.reader(text)
    header = next(rows, None)
    if header is None:
        return
    names = _csv_header(header)
    start = rows.line_num + 1
    for cells in rows:
        line, start = start, rows.line_num + 1
        if not any(cells):
            continue
        yield _csv_record(names, cells, line, context)


FORMATS: dict[str, Callable[[IO[bytes], Context], Iterator[Checked]]] = {
    "jsonl": read_event_lines,
    "csv": read_csv,
    "xapi-jsonl": read_statement_lines,
    "xapi-array": read_statement_array,
}
DESCRIPTIONS = {
    "jsonl": "native events, JSON Lines",
    "csv": "native events, CSV",
    "xapi-jsonl": "xAPI statements, one per line",
    "xapi-array": "xAPI statements, a JSON array",
}


def detect(head: bytes) -> str:
    """The format of a file from its first bytes (64 KiB is plenty): a `[` opens an array of statements; a `{` opens
    JSON Lines, of statements when the first has an actor or a verb and no @odata.type; anything else is CSV when its
    first row names properties. Raises FileFormatError otherwise."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    if not text:
        raise FileFormatError("the file is empty")
    if text[0] == "[":
        return "xapi-array"
    if text[0] == "{":
        first = text.split("\n", 1)[0]
        try:
            record = json.loads(first)
        except ValueError:
            return "jsonl"
        statement = isinstance(record, dict) and "@odata.type" not in record and ("actor" in record or "verb" in record)
        return "xapi-jsonl" if statement else "jsonl"
    header = next(csv.reader([text.split("\n", 1)[0]]), [])
    if not any(name.strip() in _CSV_COLUMNS for name in header):
        raise FileFormatError(
            "its format is not one backfill reads: JSON Lines of native events, CSV with a header row of property "
            "names (e.g. @odata.type,externalcourseActivityId,status), or xAPI statements (a JSON array, or one "
            "per line)"
        )
    _csv_header(header)
    return "csv"


# --- Reading. ---


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for line, text in enumerate(stream, start=1):
        if line == 1:
            text = text.removeprefix(b"\xef\xbb\xbf")
        if text.strip():
            yield line, text


def _text(stream: IO[bytes]) -> io.TextIOWrapper:
    """The stream as text; bytes that are not UTF-8 are kept (as surrogates) so that their record is rejected."""
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_header(header: list[str]) -> list[str]:
    names = [name.strip() for name in header]
    unknown = [name for name in names if name not in _CSV_COLUMNS]
    if unknown:
        raise FileFormatError(
            f"column {unknown[0]!r} of the header row is not a property of a course activity (nor eventTime or "
            f"{DUE_TIME_ZONE}); names are case-sensitive"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise FileFormatError(f"column {repeated[0]!r} appears twice in the header row")
    return names


def _csv_record(names: list[str], cells: list[str], line: int, context: Context) -> Checked:
    if len(cells) > len(names):
        rule = f"a row has at most as many cells as the header row has columns ({len(names)})"
        return Checked(line, errors=(FieldError("row", "is invalid", rule),))
    if any(_NOT_UTF8.search(cell) for cell in cells):
        return Checked(line, errors=(FieldError("row", "is invalid", "must be UTF-8 text"),))
    event: dict[str, Any] = {name: cell for name, cell in zip(names, cells, strict=False) if cell != ""}
    percentage = event.get("completionPercentage")
    if percentage is not None and _INTEGER.fullmatch(percentage):
        event["completionPercentage"] = int(percentage)
    if event.get("@removed") == "deleted":
        event["@removed"] = {"reason": "deleted"}
    zone = event.pop(DUE_TIME_ZONE, None)
    if zone is not None:
        if "dueDateTime" not in event:
            rule = "goes with a dueDateTime column: together they make Graph's dateTimeTimeZone"
            return Checked(line, errors=(FieldError(DUE_TIME_ZONE, "is invalid", rule),))
        event["dueDateTime"] = {"dateTime": event["dueDateTime"], "timeZone": zone}
    checked = check_event(event, line, context)
    return replace(checked, errors=tuple(_csv_due_error(e, zone) for e in checked.errors))


def _csv_due_error(error: FieldError, zone: str | None) -> FieldError:
    """The due date's error in the CSV's terms: two columns, not a JSON object."""
    if error.field != "dueDateTime":
        return error
    if zone is None:
        return replace(error, rule=f"{_DATE_TIME_RULE}, or a wall time with a {DUE_TIME_ZONE} column")
    if error.rule == timezones.RULE:
        return replace(error, field=DUE_TIME_ZONE)
    return replace(error, rule=f"with a {DUE_TIME_ZONE} column: a wall time, e.g. 2022-09-22T16:05:00")


def _array_items(text: io.TextIOWrapper) -> Iterator[tuple[int, int, Any]]:
    """(line, position, value) per element of a JSON array, or a FieldError where the array cannot be read on."""
    decoder = json.JSONDecoder()
    buffer, pos, ended = "", 0, False
    line, counted = 1, 0  # the line at buffer[counted]

    def more() -> bool:
        nonlocal buffer, pos, counted, ended
        if ended:
            return False
        chunk = text.read(_CHUNK)
        ended = not chunk
        here()
        buffer, pos, counted = buffer[pos:] + chunk, 0, 0
        return bool(chunk)

    def here() -> int:
        nonlocal line, counted
        line += buffer.count("\n", counted, pos)
        counted = pos
        return line

    def skip_blank() -> str:
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n":
                pos += 1
            if pos < len(buffer) or not more():
                return buffer[pos] if pos < len(buffer) else ""

    def broken(item: int, rule: str) -> tuple[int, int, FieldError]:
        return here(), item, FieldError("body", "is invalid", f"{rule}; nothing after this point was read")

    if skip_blank() != "[":
        yield broken(1, "must be a JSON array of statements")
        return
    pos += 1
    if skip_blank() == "]":
        return
    item = 0
    while True:
        item += 1
        skip_blank()
        while True:  # an element cut by the end of the buffer is decoded again with more text
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                if len(buffer) - pos <= MAX_ITEM_CHARS and more():
                    continue
                rule = f"must be a JSON array of statements ({exc.msg})"
                if not ended:  # gave up before the end: a statement too long to be one, or not JSON
                    rule = f"must be a JSON array of statements of at most {MAX_ITEM_CHARS:,} characters ({exc.msg})"
                yield broken(item, rule)
                return
            if end < len(buffer) or not more():
                break
        start = here()
        if _NOT_UTF8.search(buffer, pos, end):
            value = FieldError("statement", "is invalid", "must be UTF-8 text")
        pos = end
        yield start, item, value
        after = skip_blank()
        if after == "]":
            return
        if after != ",":
            yield broken(item + 1, "must be a JSON array of statements (',' or ']' expected)")
            return
        pos += 1
