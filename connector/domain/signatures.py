"""Standard Webhooks signature checks (https://www.standardwebhooks.com), one provider's secrets at a time."""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping, Sequence
from functools import lru_cache

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class SignatureError(Exception):
    """The request is not signed by any of the provider's current secrets; the message says why."""


@lru_cache(maxsize=256)
def _webhook(secret: str) -> Webhook:
    return Webhook(secret)


MAX_WEBHOOK_ID = 256
#: Unix seconds, digits only: the library would read "T.999", "+T" or "Te0" as a float and sign floor(T), while the
#: event time took the raw header. Ten digits reach 2286; more overflow the library's datetime.
MAX_TIMESTAMP_DIGITS = 10
_TIMESTAMP_RULE = f"webhook-timestamp must be Unix time in whole seconds, digits only (at most {MAX_TIMESTAMP_DIGITS})"


def verify(body: bytes, headers: Mapping[str, str], provider_secrets: Sequence[str]) -> str:
    """Checks the signature against each secret (several during a rotation); returns the webhook id.

    The library compares in constant time and enforces the 5-minute timestamp tolerance. Entries it cannot read
    (not `v1,<base64 of 32 bytes>`) are dropped first: the library would stop at them, and any matching entry passes.
    """
    found = {name: headers.get(name) for name in HEADERS}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise SignatureError(f"missing header {', '.join(missing)} (Standard Webhooks signature required)")
    if len(found["webhook-id"] or "") > MAX_WEBHOOK_ID:
        raise SignatureError(f"webhook-id is longer than {MAX_WEBHOOK_ID} characters")
    if not _is_unix_seconds(found["webhook-timestamp"] or ""):
        raise SignatureError(_TIMESTAMP_RULE)
    entries = [entry for entry in (found["webhook-signature"] or "").split() if _readable(entry)]
    if not entries:
        raise SignatureError("webhook-signature has no v1,<base64> entry")
    found["webhook-signature"] = " ".join(entries)
    if not provider_secrets:
        raise SignatureError("no webhook secret is configured for this provider")
    last = "no signature matches"
    for secret in provider_secrets:
        try:
            _webhook(secret).verify(body, found, json_parse=False)  # type: ignore[arg-type]
        except WebhookVerificationError as exc:
            last = str(exc)
            if "timestamp" in last.lower() or "header" in last.lower():
                break  # the same for every secret
        except (ValueError, UnicodeDecodeError):  # a malformed signature header, or a body that is not UTF-8
            last = "malformed webhook-signature header or body"
            break
        else:
            return found["webhook-id"]  # type: ignore[return-value]
    raise SignatureError(_explain(last))


def _is_unix_seconds(value: str) -> bool:
    return value.isascii() and value.isdigit() and len(value) <= MAX_TIMESTAMP_DIGITS


def _readable(entry: str) -> bool:
    version, _, signature = entry.partition(",")
    if version != "v1":
        return False
    try:
        return len(base64.b64decode(signature, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _explain(reason: str) -> str:
    lowered = reason.lower()
    if "too old" in lowered or "too new" in lowered:
        return f"{reason}: webhook-timestamp must be within 5 minutes of the current time"
    if "no matching signature" in lowered:
        return "no signature in webhook-signature matches any of the provider's secrets"
    return reason


def new_secret() -> str:
    """A fresh webhook secret: 32 random bytes, as Standard Webhooks writes them (whsec_ + base64)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
