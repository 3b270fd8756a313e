"""A provider's own credentials on a request: its LRS key and secret (HTTP Basic), its webhook signature, its
Caliper API key, its SCORM Cloud postback user name and password.

Every check takes the same steps whether the registrationId is configured or not: an unknown provider, or one
without credentials of that kind, is checked against a stand-in credential that nothing matches, so that neither
the answer nor its timing says which registrationIds exist.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Iterable, Mapping

from connector.domain.signatures import SignatureError, new_secret, verify
from connector.settings import ProviderSettings

_STAND_IN = (("nobody", secrets.token_urlsafe(32)),)
_STAND_IN_SECRETS = (new_secret(),)


def basic_authorized(provider: ProviderSettings | None, header: str) -> bool:
    """Whether the Authorization header carries one of the provider's LRS credentials."""
    own = [(c.key, c.secret) for c in provider.xapi_credentials] if provider is not None else []
    return pair_authorized(own, basic_credentials(header) or ("", ""))


def scorm_cloud_authorized(provider: ProviderSettings | None, user_name: str | None, password: str | None) -> bool:
    """Whether a postback carries one of the provider's SCORM Cloud credentials (form fields or HTTP Basic)."""
    own = [(c.user_name, c.password) for c in provider.scorm_cloud_credentials] if provider is not None else []
    return pair_authorized(own, (user_name or "", password or ""))


def caliper_authorized(provider: ProviderSettings | None, header: str) -> bool:
    """Whether the Authorization header is one of the provider's Caliper API keys, with or without `Bearer `
    (caliper-php sends the bare key, caliper-python a configurable scheme, the spec recommends Bearer)."""
    presented = header.strip()
    if presented[:7].lower() == "bearer ":
        presented = presented[7:].strip()
    own = [(key, "") for key in provider.caliper_keys] if provider is not None else []
    return pair_authorized(own, (presented, ""))


def pair_authorized(own: Iterable[tuple[str, str]], presented: tuple[str, str]) -> bool:
    """Whether `presented` is one of `own` (a stand-in when there is none): every pair is compared, both halves in
    constant time, so the time taken does not depend on which one matches, if any."""
    own = list(own)
    key, secret = (_bytes(part) for part in presented)
    matched = False
    for own_key, own_secret in own or _STAND_IN:
        same_key = hmac.compare_digest(key, _bytes(own_key))
        same_secret = hmac.compare_digest(secret, _bytes(own_secret))
        matched |= same_key and same_secret
    return matched and bool(own)


def signature_authorized(provider: ProviderSettings | None, headers: Mapping[str, str], body: bytes) -> None:
    """Raises SignatureError unless the request is signed with one of the provider's webhook secrets; the reason is
    the same for an unknown provider as for a wrong secret."""
    own = provider.webhook_secrets if provider is not None else ()
    verify(body, headers, own or _STAND_IN_SECRETS)
    if not own:
        raise SignatureError("no signature in webhook-signature matches any of the provider's secrets")


def basic_credentials(header: str) -> tuple[str, str] | None:
    """The user name and password of an `Authorization: Basic` header, or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        key, _, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key, secret


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")
