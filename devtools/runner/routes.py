"""HTTP trigger routes, matched as the host's ASP.NET Core routing matches them.

Route templates with ``{name}``, ``{name?}``, ``{name=default}``, ``{name:constraint}`` (int, long, float, double,
decimal, bool, alpha, guid, datetime, regex(...), min/max/range, minlength/maxlength/length) and ``{*rest}``,
case-insensitive, values percent-decoded; and ASP.NET's precedence, so that a literal segment wins over a
parameter whatever order the functions were declared in, as in Azure.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import urllib.parse
from collections.abc import Callable

from devtools.runner.config import RunnerError

log = logging.getLogger("devtools.runner")

_GUID = r"\{?[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}\}?"
_NUMBER = r"-?\d+(?:\.\d+)?"
_CONSTRAINT_PATTERNS = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "float": _NUMBER,
    "double": _NUMBER,
    "decimal": _NUMBER,
    "bool": r"(?i:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": _GUID,
    "datetime": r"[^/]+",
}
_CONSTRAINT = re.compile(r"(\w+)(?:\((.*)\))?$")


def _constraint_check(name: str, arg: str | None) -> Callable[[str], bool] | None:
    def number(v: str) -> float | None:
        try:
            return float(v)
        except ValueError:
            return None

    if arg is None:
        return None
    if name in ("min", "max", "range"):
        bounds = [float(x) for x in arg.split(",")]
        lo = bounds[0] if name in ("min", "range") else None
        hi = bounds[-1] if name in ("max", "range") else None
        return lambda v: (n := number(v)) is not None and (lo is None or n >= lo) and (hi is None or n <= hi)
    if name in ("minlength", "maxlength", "length"):
        bounds = [int(x) for x in arg.split(",")]
        if name == "minlength":
            return lambda v: len(v) >= bounds[0]
        if name == "maxlength":
            return lambda v: len(v) <= bounds[0]
        lo, hi = (bounds[0], bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])
        return lambda v: lo <= len(v) <= hi
    return None


@dataclasses.dataclass
class _Param:
    name: str
    group: str
    optional: bool = False
    catch_all: bool = False
    default: str | None = None
    constrained: bool = False
    regex: str = "[^/]+"
    checks: list[Callable[[str], bool]] = dataclasses.field(default_factory=list)


class RouteTemplate:
    """An ASP.NET-style route template (what the host uses), compiled to a regex."""

    _TOKEN = re.compile(r"\{([^{}]+)\}")

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.params: list[_Param] = []
        regex, ranks = self._compile()
        self._regex = re.compile(f"^{regex}$", re.IGNORECASE)
        self.precedence = ranks

    def _parse_param(self, body: str) -> _Param:
        catch_all = body.startswith("*")
        body = body.lstrip("*")
        default = None
        if "=" in body:
            body, default = body.split("=", 1)
        optional = body.endswith("?") or default is not None
        name, *constraints = body.rstrip("?").split(":")
        param = _Param(name=name, group=f"p{len(self.params)}", optional=optional, catch_all=catch_all, default=default)
        param.regex = _param_regex(catch_all, self._constrain(param, constraints))
        self.params.append(param)
        return param

    def _constrain(self, param: _Param, constraints: list[str]) -> list[str]:
        """Marks ``param`` constrained and adds the checks a regex cannot make; returns the constraints' regexes."""
        patterns: list[str] = []
        for constraint in constraints:
            match = _CONSTRAINT.match(constraint)
            if not match:
                raise RunnerError(f"route {self.template!r}: bad constraint {constraint!r}")
            cname, arg = match.group(1).lower(), match.group(2)
            param.constrained = True
            if cname == "regex" and arg is not None:
                patterns.append(arg.replace("^", "").replace("$", ""))
            elif cname in _CONSTRAINT_PATTERNS:
                patterns.append(_CONSTRAINT_PATTERNS[cname])
            else:
                check = _constraint_check(cname, arg)
                if check is None:
                    log.warning("route %r: constraint %r not checked by the local runner", self.template, constraint)
                else:
                    param.checks.append(check)
        return patterns

    def _compile(self) -> tuple[str, tuple[int, ...]]:
        if not self.template:
            return "", ()
        segments = [self._segment(text, "/" if index else "") for index, text in enumerate(self.template.split("/"))]
        return "".join(regex for regex, _ in segments), tuple(rank for _, rank in segments)

    def _segment(self, segment: str, sep: str) -> tuple[str, int]:
        """A segment's regex, after ``sep``, and its precedence rank: a literal 0, a literal with parameters 1, a
        constrained parameter 2, a parameter 3, an optional one 4, a catch-all 5."""
        whole = self._TOKEN.fullmatch(segment)
        if whole is None:
            return self._mixed_segment(segment, sep)
        param = self._parse_param(whole.group(1))
        regex = f"(?P<{param.group}>{param.regex})"
        if param.catch_all:
            return f"(?:{sep}{regex})?", 5
        if param.optional:
            return f"(?:{sep}{regex})?", 4
        return sep + regex, 2 if param.constrained else 3

    def _mixed_segment(self, segment: str, sep: str) -> tuple[str, int]:
        """Literal text, possibly mixed with parameters ("{name}.{ext}")."""
        pieces: list[str] = []
        pos = 0
        has_param = False
        for match in self._TOKEN.finditer(segment):
            pieces.append(re.escape(segment[pos : match.start()]))
            param = self._parse_param(match.group(1))
            # Greedy, so "{name}.{ext}" splits "a.b.pdf" at the last dot, as ASP.NET routing does.
            pieces.append(f"(?P<{param.group}>{param.regex})")
            has_param = True
            pos = match.end()
        pieces.append(re.escape(segment[pos:]))
        return sep + "".join(pieces), 1 if has_param else 0

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters for a (raw, percent-encoded) path without leading/trailing slashes."""
        found = self._regex.match(path)
        if not found:
            return None
        values: dict[str, str] = {}
        for param in self.params:
            raw = found.group(param.group)
            if raw is None or raw == "":
                if param.default is not None:
                    values[param.name] = param.default
                continue
            value = urllib.parse.unquote(raw)
            if not all(check(value) for check in param.checks):
                return None
            values[param.name] = value
        return values

    def __repr__(self) -> str:
        return f"RouteTemplate({self.template!r})"


def _param_regex(catch_all: bool, patterns: list[str]) -> str:
    if catch_all:
        return ".*"
    if not patterns:
        return "[^/]+"
    # Several pattern constraints must all hold: chain them as lookaheads on the segment.
    *heads, last = patterns
    return "".join(f"(?=(?:{p})(?:/|$))" for p in heads) + f"(?:{last})"
