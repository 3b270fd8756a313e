"""Sends the connector's traces, metrics and logs to Application Insights when APPLICATIONINSIGHTS_CONNECTION_STRING
is set (Entra authentication with APPLICATIONINSIGHTS_AUTHENTICATION_STRING). What is recorded is
connector.app.tracing's; log records carry webhookId, registrationId and graphRequestId as dimensions, never secrets
or email addresses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

_configured = False


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Sends telemetry to Application Insights when it is configured; returns whether it did."""
    global _configured
    env = os.environ if environ is None else environ
    connection_string = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if _configured or not connection_string:
        return _configured
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {"connection_string": connection_string, "logger_name": "connector"}
    auth = dict(
        part.split("=", 1)
        for part in env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "").split(";")
        if "=" in part
    )
    if auth.get("Authorization", "").upper() == "AAD":
        from azure.identity import ManagedIdentityCredential

        options["credential"] = ManagedIdentityCredential(client_id=auth.get("ClientId") or env.get("AZURE_CLIENT_ID"))
    configure_azure_monitor(**options)
    _configured = True
    return True
