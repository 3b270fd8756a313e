"""Queue messages as the host reads and writes them, so that a function sees here what it would see in Azure.

Reading: a message's text is base64-decoded or taken as it is (``messageEncoding``); the trigger argument is built
by azure.functions' own converter from the body and the trigger metadata the host sends: storage's fields, then a
JSON message's top-level properties over them as Json.NET converts them (a message's ``"id"`` becomes ``msg.id``).
Writing: what a queue output was set to becomes one message per item; a string that looks like JSON is rewritten
as the host's Json.NET writes it (indented, dates reformatted, an array split into one message per element).
Json.NET's own rules are in :mod:`devtools.runner.newtonsoft`.

Imports neither aiohttp nor the storage SDK: these are pure conversions, given a received message's fields.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import azure.functions as func
from azure.functions import meta
from azure.functions.queue import QueueMessageInConverter

from devtools.runner import newtonsoft
from devtools.runner.indexing import FunctionSpec

log = logging.getLogger("devtools.runner")


def encode_queue_values(value: Any, encoding: str) -> list[str]:
    """What a queue output binding was set to, as message texts to send (one per message)."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Iterable[Any] = host_queue_texts(value)
    elif isinstance(value, bytes | func.QueueMessage):
        items = [value]
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        items = list(value)
        if any(isinstance(i, bytes) for i in items):
            log.warning("queue output: bytes inside a list are accepted here, but the Python worker rejects them")
    else:
        raise NotImplementedError(f"unsupported queue output type: {type(value).__name__} (use str, bytes or a list)")
    texts: list[str] = []
    for item in items:
        if isinstance(item, func.QueueMessage):
            data = item.get_body()
        elif isinstance(item, str):
            data = item.encode("utf-8")
        elif isinstance(item, bytes):
            data = item
        else:
            raise NotImplementedError(f"invalid data type in output queue message list: {type(item).__name__}")
        if encoding == "base64":
            texts.append(base64.b64encode(data).decode("ascii"))
        else:
            texts.append(data.decode("utf-8"))
    return texts


def host_queue_texts(text: str) -> list[str]:
    """The messages the host writes for one string set on a queue output (FunctionBinding.ReadAsEnumerable, then
    JToken.ToString() each): text that looks like JSON is read by Json.NET, dates included, and written back
    indented, one message per element of an array (python-worker #1492); other text as it is.

    Raises ValueError for text that looks like JSON but is not: the host's output binding fails. The strings of a
    list output reach the host as one JSON array of strings, read without dates, and are written as they are.
    """
    if not newtonsoft.looks_like_json(text):
        return [text]
    token = newtonsoft.parse(text)
    return [newtonsoft.to_string(item) or "" for item in (token if isinstance(token, list) else [token])]


def decode_queue_body(content: str | bytes | None, encoding: str) -> bytes:
    """A received message's text as the body bytes the function sees (ValueError if not base64)."""
    if content is None:
        return b""
    raw = content.encode("utf-8") if isinstance(content, str) else content
    if encoding == "base64":
        try:
            return base64.b64decode(b"".join(raw.split()), validate=True)
        except binascii.Error as exc:
            raise ValueError(f"message is not valid base64 ({exc})") from exc
    return raw


def bind_queue_trigger(spec: FunctionSpec, message: Any, body: bytes) -> Any:
    """The trigger argument as the host and the Python worker make it, from the body and the trigger metadata the host
    sends, by azure.functions' own QueueMessageInConverter. Raises where the host or the worker would fail the
    invocation: a body that is not UTF-8 (the host binds the trigger as a string, strictly), or metadata the worker
    cannot convert (e.g. ``"dequeueCount": "x"`` in the message)."""
    binary = str(spec.trigger.get("dataType") or "").lower() == "binary"  # bound as bytes: any bytes, no properties
    text = _utf8(body) if binary else body.decode("utf-8")
    if spec.trigger_annotation in (bytes, "bytes"):
        return body
    if spec.trigger_annotation in (str, "str"):
        return body.decode("utf-8")
    data = meta.Datum(body, "bytes") if binary else meta.Datum(text, "string")
    properties = {} if binary or text is None else message_properties(text)
    return QueueMessageInConverter.decode(data, trigger_metadata=queue_trigger_metadata(message, text, properties))


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def queue_trigger_metadata(message: Any, text: str | None, properties: Mapping[str, Any]) -> dict[str, meta.Datum]:
    """The trigger metadata the host sends the worker for a received message: QueueTriggerBinding's fields
    (``QueueTrigger`` only for UTF-8 text), then the message's properties over them, names compared ignoring case,
    so that a message's ``"id"`` replaces storage's ``Id`` (python-worker #1373). Values as the host's ToRpc sends
    them: strings as strings, the rest as JSON (storage times as ``DateTimeOffset`` values at +00:00)."""
    binding_data: dict[str, Any] = {
        "QueueTrigger": text,
        "DequeueCount": message.dequeue_count,
        "ExpirationTime": _storage_time(message.expires_on),
        "Id": message.id,
        "InsertionTime": _storage_time(message.inserted_on or datetime.datetime.now(datetime.UTC)),
        "NextVisibleTime": _storage_time(message.next_visible_on),
        "PopReceipt": message.pop_receipt,
    }
    names = {name.lower(): name for name in binding_data}
    for name, value in properties.items():
        binding_data[names.setdefault(name.lower(), name)] = value
    return {name: _rpc_datum(value) for name, value in binding_data.items() if value is not None}


def _storage_time(moment: datetime.datetime | None) -> newtonsoft.NetDateTime:
    """A storage time as a .NET value; none is DateTimeOffset.MaxValue, the host's default."""
    if moment is None:
        return newtonsoft.NetDateTime(newtonsoft.MAX_TICKS, "Local")
    return newtonsoft.NetDateTime.from_datetime(moment)


def _rpc_datum(value: Any) -> meta.Datum:
    if isinstance(value, str):
        return meta.Datum(value, "string")
    return meta.Datum(newtonsoft.write(value, indented=False), "json")


def message_properties(text: str) -> dict[str, Any]:
    """The host's ``Utility.ApplyBindingData``: a JSON object message's top-level properties, objects kept, arrays and
    nulls left out, other values as .NET's ``(string)`` cast makes them (``"7"``, ``"True"``, a date as
    ``"01/02/2024 03:04:05"``). Nothing for other text."""
    if not newtonsoft.looks_like_json(text):
        return {}
    try:
        token = newtonsoft.parse(text)
    except ValueError:
        return {}
    if not isinstance(token, dict):
        return {}
    properties: dict[str, Any] = {}
    for name, value in token.items():
        if isinstance(value, dict):
            properties[name] = value
        elif value is not None and not isinstance(value, list):
            properties[name] = newtonsoft.to_string(value)
    return properties
