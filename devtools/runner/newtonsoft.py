"""What Json.NET (Newtonsoft.Json 13, .NET 8), inside the Functions host, does to JSON text on its way through.

The host reads a queue message or a string output with ``JObject.Parse``/``JToken.Parse`` and default settings, so
string values shaped like ISO 8601 date-times become ``DateTime`` values, and writes them back with
``JToken.ToString()`` (indented) or casts them to ``string``. The runner applies the same here (see
:mod:`devtools.runner.messages`), so a test sees what Azure would do to a message.

Reproduced from Json.NET's source: ``DateTimeParser`` (which strings are dates, 7-digit fractions, ``+hh:mm``
offsets converted to the host's local time), ``DateTimeUtils.WriteDefaultIsoDate`` (trailing zeros dropped),
``JavaScriptUtils`` escapes, ``JsonConvert.ToString(double)`` and the reader's MaxDepth of 64. The host's local
time zone is UTC, as on Azure Functions (Linux), and its culture the invariant one. Not reproduced: the
``/Date(ticks)/`` form and the leniency of Json.NET's reader (comments, single quotes, unquoted names): text that
Python's ``json`` rejects is reported as not JSON.
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

TICKS_PER_SECOND = 10_000_000
TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
MAX_TICKS = 3_155_378_975_999_999_999  # DateTime.MaxValue: 9999-12-31T23:59:59.9999999
MAX_DEPTH = 64  # JsonReader.MaxDepth's default since Json.NET 13
_EPOCH = datetime(1, 1, 1)  # ticks count from here, whatever the kind

_DATE_TIME = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})")
_DIGITS = re.compile(r"[0-9]{2}")


@dataclass(frozen=True)
class NetDateTime:
    """A .NET ``DateTime``: 100 ns ticks since 0001-01-01 and a kind, "Utc", "Local" (the host's: UTC) or
    "Unspecified"."""

    ticks: int
    kind: str

    @classmethod
    def from_datetime(cls, moment: datetime) -> NetDateTime:
        """A storage time (a ``DateTimeOffset`` at +00:00, which Json.NET writes like a local time)."""
        elapsed = moment.astimezone(UTC).replace(tzinfo=None) - _EPOCH
        return cls(elapsed.days * TICKS_PER_DAY + (elapsed.seconds * 1_000_000 + elapsed.microseconds) * 10, "Local")

    def _parts(self) -> tuple[date, int, int, int, int]:
        days, rest = divmod(self.ticks, TICKS_PER_DAY)
        seconds, fraction = divmod(rest, TICKS_PER_SECOND)
        return date.fromordinal(days + 1), seconds // 3600, seconds // 60 % 60, seconds % 60, fraction

    def iso(self) -> str:
        """``JsonTextWriter``'s form: ``yyyy-MM-ddTHH:mm:ss``, the fraction without trailing zeros, then ``Z`` or the
        local offset."""
        day, hour, minute, second, fraction = self._parts()
        text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        if fraction:
            text += "." + f"{fraction:07d}".rstrip("0")
        return text + {"Utc": "Z", "Local": "+00:00"}.get(self.kind, "")

    def invariant(self) -> str:
        """``Convert.ToString(dateTime, CultureInfo.InvariantCulture)``: ``MM/dd/yyyy HH:mm:ss``."""
        day, hour, minute, second, _ = self._parts()
        return f"{day.month:02d}/{day.day:02d}/{day.year:04d} {hour:02d}:{minute:02d}:{second:02d}"


def parse_date(text: str) -> NetDateTime | None:
    """The ``DateTime`` Json.NET's reader makes of a string value (``DateParseHandling.DateTime``), or None.

    Raises ValueError where .NET throws: hour 24 on 9999-12-31.
    """
    if not 19 <= len(text) <= 40 or text[10] != "T":
        return None
    found = _DATE_TIME.match(text)
    if found is None:
        return None
    year, month, day, hour, minute, second = map(int, found.groups())
    if not (year >= 1 and 1 <= month <= 12 and hour <= 24 and minute < 60 and second < 60):
        return None
    if not 1 <= day <= calendar.monthrange(year, month)[1] or (hour == 24 and (minute or second)):
        return None
    fraction, end = _fraction(text, found.end())
    if fraction is None or (hour == 24 and fraction):
        return None
    zone = _zone(text, end)
    if zone is None:
        return None
    kind, offset_minutes = zone
    ticks = (date(year, month, day).toordinal() - 1) * TICKS_PER_DAY + fraction
    ticks += (hour * 3600 + minute * 60 + second) * TICKS_PER_SECOND
    if ticks > MAX_TICKS:
        raise ValueError(f"{text!r}: the added day is past DateTime.MaxValue")
    if kind == "Local":  # to UTC, then to the host's local time (UTC), within DateTime's range
        ticks = min(max(ticks - offset_minutes * 60 * TICKS_PER_SECOND, 0), MAX_TICKS)
    return NetDateTime(ticks, kind)


def _fraction(text: str, start: int) -> tuple[int | None, int]:
    """Up to 7 digits after a ``.`` as ticks, and where reading stopped (None: a ``.`` without digits)."""
    if start >= len(text) or text[start] != ".":
        return 0, start
    digits = ""
    position = start + 1
    while position < len(text) and len(digits) < 7 and text[position] in "0123456789":
        digits += text[position]
        position += 1
    return (int(digits.ljust(7, "0")) if digits else None), position


def _zone(text: str, start: int) -> tuple[str, int] | None:
    """``DateTimeParser.ParseZone``, quirks included: (kind, offset in minutes east of UTC), or None."""
    end = len(text)
    if start == end:
        return "Unspecified", 0
    sign = text[start]
    if sign in "Zz":
        return ("Utc", 0) if start + 1 == end else None
    kind, hours, minutes = "Unspecified", 0, 0
    if start + 2 < end and _DIGITS.fullmatch(text, start + 1, start + 3) and sign in "+-":
        kind, hours, start = "Local", int(text[start + 1 : start + 3]), start + 3
    if start < end:
        if text[start] == ":":
            start += 1
        if start + 1 < end and _DIGITS.fullmatch(text, start, start + 2):
            minutes, start = int(text[start : start + 2]), start + 2
    if start != end:
        return None
    offset = hours * 60 + minutes
    return kind, (-offset if sign == "-" else offset)


def looks_like_json(text: str) -> bool:
    """The host's ``Utility.IsJson``: trimmed, it starts with ``{`` and ends with ``}``, or ``[`` and ``]``."""
    trimmed = text.strip()
    return trimmed[:1] + trimmed[-1:] in ("{}", "[]")


def parse(text: str) -> Any:
    """``JToken.Parse``: JSON with date-like string values (not names) as NetDateTime.

    Raises ValueError for text that is not JSON, or nested deeper than the reader's MaxDepth.
    """
    try:
        return _with_dates(json.loads(text), 1)
    except RecursionError:
        raise ValueError(f"The reader's MaxDepth of {MAX_DEPTH} has been exceeded.") from None


def _with_dates(value: Any, depth: int) -> Any:
    if isinstance(value, dict | list) and depth > MAX_DEPTH:
        raise ValueError(f"The reader's MaxDepth of {MAX_DEPTH} has been exceeded.")
    if isinstance(value, dict):
        return {name: _with_dates(item, depth + 1) for name, item in value.items()}
    if isinstance(value, list):
        return [_with_dates(item, depth + 1) for item in value]
    if isinstance(value, str):
        return parse_date(value) or value
    return value


def write(token: Any, *, indented: bool = True, level: int = 0) -> str:
    """``JToken.ToString()`` (``Formatting.Indented``: two spaces, ``\\n`` as on Linux) or, with ``indented=False``,
    ``ToString(Formatting.None)``."""
    if isinstance(token, dict | list):
        return _write_container(token, indented, level)
    if isinstance(token, NetDateTime):
        return f'"{token.iso()}"'
    if isinstance(token, str):
        return _string(token)
    if isinstance(token, float):
        return _json_double(token)
    return json.dumps(token)  # bool, int, None


def _write_container(token: dict[str, Any] | list[Any], indented: bool, level: int) -> str:
    brackets = "{}" if isinstance(token, dict) else "[]"
    if not token:
        return brackets
    colon = ": " if indented else ":"
    pairs = token.items() if isinstance(token, dict) else ((None, item) for item in token)
    items = [
        ("" if name is None else _string(name) + colon) + write(item, indented=indented, level=level + 1)
        for name, item in pairs
    ]
    newline = "\n" + "  " * (level + 1) if indented else ""
    closing = "\n" + "  " * level if indented else ""
    return brackets[0] + newline + ("," + newline).join(items) + closing + brackets[1]


def _string(text: str) -> str:
    """Json.NET's default escapes: Python's, plus U+0085, U+2028 and U+2029."""
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _json_double(value: float) -> str:
    """``JsonConvert.ToString(double)``: ``R`` with a ``.0`` added to whole numbers; NaN and infinities quoted."""
    text = dotnet_double(value)
    if value != value or value in (float("inf"), float("-inf")):
        return f'"{text}"'
    return text if any(mark in text for mark in ".E") else text + ".0"


def dotnet_double(value: float) -> str:
    """.NET's ``double.ToString("R", InvariantCulture)``: the shortest round-trip digits, in exponent form when the
    decimal point would fall more than 15 (or the digit count) places right of the first digit, or 5 left."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    sign = "-" if str(value).startswith("-") else ""
    if value == 0:
        return sign + "0"
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    scale = len(digits) + int(exponent)  # value = 0.<digits> x 10^scale
    if scale > max(len(digits), 15) or scale < -3:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}E{'+' if scale >= 1 else '-'}{abs(scale - 1):02d}"
    if scale <= 0:
        return f"{sign}0.{'0' * -scale}{digits}"
    if scale >= len(digits):
        return sign + digits + "0" * (scale - len(digits))
    return f"{sign}{digits[:scale]}.{digits[scale:]}"


def to_string(token: Any) -> str | None:
    """A token as .NET prints it: containers as indented JSON, values as ``JValue.ToString()`` or ``(string)value``
    do (invariant culture: ``True``, ``1.5``, ``01/02/2024 03:04:05``); None for null."""
    if isinstance(token, dict | list):
        return write(token)
    if token is None or isinstance(token, str):
        return token
    if isinstance(token, NetDateTime):
        return token.invariant()
    if isinstance(token, bool):
        return str(token)
    if isinstance(token, float):
        return dotnet_double(token)
    return str(token)
