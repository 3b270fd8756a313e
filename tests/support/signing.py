"""Signs request bodies the way a Standard Webhooks sender does."""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

SECRET = "whsec_" + base64.b64encode(b"connector-test-secret-0123456789").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"another-test-secret-abcdefghijkl").decode()
#: The creating provider's own: one provider's signature never reads or writes another's activities.
CREATING_SECRET = "whsec_" + base64.b64encode(b"the-creating-providers-secret-01").decode()


def signed_headers(
    body: bytes | str,
    secret: str = SECRET,
    *,
    webhook_id: str | None = None,
    timestamp: float | None = None,
    content_type: str | None = "application/json",
) -> dict[str, str]:
    text = body.decode() if isinstance(body, bytes) else body
    msg_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    stamp = time.time() if timestamp is None else timestamp
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, UTC), text)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(stamp)), "webhook-signature": signature}
    if content_type:
        headers["content-type"] = content_type
    return headers
