"""host.json, local.settings.json and storage connections, read as the Functions host reads them.

The host's defaults and rules where the runner depends on them: ``extensions.queues`` (batchSize 1..32,
newBatchThreshold, maxPollingInterval with its 100 ms floor, visibilityTimeout, maxDequeueCount, messageEncoding),
``extensions.http.routePrefix`` and ``functionTimeout`` as .NET TimeSpans; ``local.settings.json`` ``Values`` filling
the environment without overriding it (as ``func start`` does); a binding's ``connection`` looked up as ``X`` then
``AzureWebJobsX``, ``UseDevelopmentStorage=true`` meaning Azurite; ``%AppSetting%`` in binding properties. A bad
value fails at start-up with a :class:`RunnerError` naming the setting, as the host refuses to start.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from devtools.azurite import DEFAULT_PORTS
from devtools.azurite import connection_string as azurite_connection_string

log = logging.getLogger("devtools.runner")

DEFAULT_STORAGE_SETTING = "AzureWebJobsStorage"
MIN_POLLING_INTERVAL = 0.1  # the host's minimum queue polling interval (100 ms)


class RunnerError(RuntimeError):
    """The app or its configuration cannot be run."""


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d+):(\d+)(?:\.(\d+))?$")


def parse_timespan(value: str | int | float | None, *, number_unit: float = 1.0) -> float | None:
    """A .NET TimeSpan string ("hh:mm:ss", "d.hh:mm:ss", "00:00:02.500") as seconds.

    ``None`` and ``"-1"`` (no limit) give ``None``. Bare numbers are multiplied by ``number_unit``
    (host.json v1 gave maxPollingInterval in milliseconds: pass ``number_unit=0.001``).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a TimeSpan: {value!r}")
    if isinstance(value, int | float):
        return None if value < 0 else float(value) * number_unit
    text = str(value).strip()
    if text in ("-1", ""):
        return None
    match = _TIMESPAN.match(text)
    if not match:
        raise ValueError(f"not a TimeSpan (expected hh:mm:ss[.fff]): {value!r}")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    if fraction:
        total += int(fraction) / 10 ** len(fraction)
    return float(total)


def format_timespan(seconds: float | None) -> str:
    """Seconds as the host writes a TimeSpan in its logs ("00:00:02.500"); ``-`` for none."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    text = f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    if seconds != whole:
        text += f".{round((seconds - whole) * 1000):03d}"
    return text


@dataclasses.dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` of host.json, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @property
    def max_in_flight(self) -> int:
        return self.batch_size + self.new_batch_threshold

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> QueueOptions:
        data = {k.lower(): v for k, v in (data or {}).items()}
        batch_size = int(data.get("batchsize", 16))
        if not 1 <= batch_size <= 32:
            raise RunnerError(f"host.json extensions.queues.batchSize must be 1..32, got {batch_size}")
        threshold = data.get("newbatchthreshold")
        new_batch_threshold = batch_size // 2 if threshold is None or int(threshold) < 0 else int(threshold)
        max_polling = parse_timespan(data.get("maxpollinginterval"), number_unit=0.001)
        if max_polling is None:
            max_polling = 60.0
        visibility = parse_timespan(data.get("visibilitytimeout")) or 0.0
        max_dequeue = int(data.get("maxdequeuecount", 5))
        if max_dequeue < 1:
            raise RunnerError(f"host.json extensions.queues.maxDequeueCount must be >= 1, got {max_dequeue}")
        encoding = str(data.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise RunnerError(f'host.json extensions.queues.messageEncoding must be "base64" or "none": {encoding}')
        return cls(
            batch_size=batch_size,
            new_batch_threshold=new_batch_threshold,
            max_polling_interval=max(max_polling, MIN_POLLING_INTERVAL),
            visibility_timeout=visibility,
            max_dequeue_count=max_dequeue,
            message_encoding=encoding,
        )


@dataclasses.dataclass(frozen=True)
class HostConfig:
    """The parts of host.json the runner honours."""

    route_prefix: str = "api"
    queues: QueueOptions = dataclasses.field(default_factory=QueueOptions)
    function_timeout: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> HostConfig:
        data = data or {}
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = http.get("routePrefix", "api")
        return cls(
            route_prefix=str(prefix if prefix is not None else "").strip("/"),
            queues=QueueOptions.from_json(extensions.get("queues")),
            function_timeout=parse_timespan(data.get("functionTimeout")),
        )

    @classmethod
    def resolve(cls, given: HostConfig | Mapping[str, Any] | Path | str | None, app_dir: Path) -> HostConfig:
        """``given`` as it is, from a host.json dict, or read from a path (default ``app_dir/host.json``)."""
        if isinstance(given, HostConfig):
            return given
        if isinstance(given, Mapping):
            return cls.from_json(given)
        return cls.load(Path(given) if given else app_dir / "host.json")

    @classmethod
    def load(cls, path: Path) -> HostConfig:
        if not path.exists():
            log.warning("%s not found: using the host's defaults", path)
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as exc:
            raise RunnerError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_json(data)


def load_local_settings(path: Path, environ: Any = None) -> dict[str, Any]:
    """Read local.settings.json and copy its ``Values`` into ``environ`` (default ``os.environ``).

    Like ``func start``, variables already in the environment win. Returns the parsed file, or ``{}``
    when it does not exist.
    """
    environ = os.environ if environ is None else environ
    if not path.exists():
        log.debug("no %s", path)
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise RunnerError(f"{path} is not valid JSON: {exc}") from exc
    if data.get("IsEncrypted"):
        raise RunnerError(f"{path} is encrypted (IsEncrypted=true): the local runner cannot read it")
    for name, value in (data.get("Values") or {}).items():
        if name not in environ and value is not None:
            environ[name] = str(value)
    return data


def expand_connection_string(value: str) -> str:
    """Turn ``UseDevelopmentStorage=true`` into Azurite's full connection string (default ports)."""
    parts = dict(p.split("=", 1) for p in value.strip().strip(";").split(";") if "=" in p)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        proxy = parts.get("DevelopmentStorageProxyUri")
        host = urllib.parse.urlsplit(proxy).hostname if proxy else "127.0.0.1"
        return azurite_connection_string(*DEFAULT_PORTS, host=host or "127.0.0.1")
    return value


def resolve_connection_string(name: str | None, settings: Mapping[str, str]) -> str:
    """The storage connection string for a binding's ``connection`` setting name.

    Empty means ``AzureWebJobsStorage``; ``X`` is looked up as ``X`` then ``AzureWebJobsX``.
    Identity-based connections (``X__accountName``/``X__queueServiceUri``) are not supported here.
    """
    name = name or DEFAULT_STORAGE_SETTING
    for candidate in (name, f"AzureWebJobs{name}"):
        value = settings.get(candidate)
        if value:
            return expand_connection_string(value)
    if any(k.startswith(f"{name}__") for k in settings):
        raise RunnerError(
            f"connection {name!r} is identity-based ({name}__...): the local runner needs a connection "
            f"string; set {name}=UseDevelopmentStorage=true (Azurite) or a real connection string"
        )
    raise RunnerError(
        f"app setting {name!r} (storage connection) is not set: add it to local.settings.json Values "
        f"or the environment, e.g. {name}=UseDevelopmentStorage=true"
    )


_PERCENT_EXPR = re.compile(r"%([^%]+)%")


def resolve_binding_expression(value: str, settings: Mapping[str, str]) -> str:
    """Replace ``%AppSetting%`` in a binding property, as the host does."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in settings:
            raise RunnerError(f"binding expression %{name}% refers to an app setting that is not set")
        return settings[name]

    return _PERCENT_EXPR.sub(repl, value)


class AppSettings(Mapping[str, str]):
    """App settings as the runner looks them up: overrides first, then the live ``os.environ`` (so that settings
    loaded later are seen)."""

    def __init__(self, overrides: Mapping[str, str] | None) -> None:
        self._overrides = dict(overrides or {})

    def __getitem__(self, key: str) -> str:
        if key in self._overrides:
            return self._overrides[key]
        return os.environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter({**os.environ, **self._overrides})

    def __len__(self) -> int:
        return len({**os.environ, **self._overrides})
