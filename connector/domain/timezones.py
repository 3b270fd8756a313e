"""The time zone names a Graph dateTimeTimeZone takes: Windows time zone ids, and the IANA names that stand for one.

Graph's reference lists the Windows names plus about a hundred IANA names, each the one CLDR's windowsZones table
gives for a Windows zone. The table (maintained with CLDR in the `tzlocal` package) is used here rather than a hand
list: a Windows id, or an IANA name that maps to one and that tzdata knows, is accepted. Names are matched without
regard to case and sent as Graph spells them, so nothing depends on how Graph compares them.
"""

from __future__ import annotations

from functools import cache

RULE = (
    "timeZone must be a Windows time zone name (e.g. Pacific Standard Time) or an IANA name that stands for one "
    "(e.g. America/Los_Angeles); UTC always works"
)


def graph_time_zone(name: str) -> str | None:
    """The name as Graph spells it, or None when it names no time zone Graph knows."""
    return _names().get(name.lower())


@cache
def _names() -> dict[str, str]:
    """Lower-case name → spelling; built on first use (about 30 ms), as few callbacks carry a time zone."""
    import zoneinfo

    from tzlocal.windows_tz import tz_win, win_tz

    known = zoneinfo.available_timezones()
    names = {iana.lower(): iana for iana in tz_win if iana in known}
    names.update({windows.lower(): windows for windows in win_tz})
    return names
