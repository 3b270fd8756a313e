"""A provider's own credentials on a request: its LRS key and secret (HTTP Basic), or its webhook signature.

Both checks take the same steps whether the registrationId is configured or not: an unknown provider, or one
without credentials of that kind, is checked against a stand-in credential that nothing matches, so that neither
the answer nor its timing says which registrationIds exist.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping

from connector.domain.signatures import SignatureError, new_secret, verify
from connector.settings import ProviderSettings, XapiCredential

_STAND_IN_CREDENTIALS = (XapiCredential("nobody", secrets.token_urlsafe(32)),)
_STAND_IN_SECRETS = (new_secret(),)


def basic_authorized(provider: ProviderSettings | None, header: str) -> bool:
    """Whether the Authorization header carries one of the provider's LRS credentials. Every credential is compared
    (key and secret, in constant time), so the time taken does not depend on which one matches, if any."""
    key, secret = _basic(header) or ("", "")
    own = provider.xapi_credentials if provider is not None else ()
    matched = False
    for credential in own or _STAND_IN_CREDENTIALS:
        same_key = hmac.compare_digest(key.encode(), credential.key.encode())
        same_secret = hmac.compare_digest(secret.encode(), credential.secret.encode())
        matched |= same_key and same_secret
    return matched and bool(own)


def signature_authorized(provider: ProviderSettings | None, headers: Mapping[str, str], body: bytes) -> None:
    """Raises SignatureError unless the request is signed with one of the provider's webhook secrets; the reason is
    the same for an unknown provider as for a wrong secret."""
    own = provider.webhook_secrets if provider is not None else ()
    verify(body, headers, own or _STAND_IN_SECRETS)
    if not own:
        raise SignatureError("no signature in webhook-signature matches any of the provider's secrets")


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        key, _, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return key, secret
