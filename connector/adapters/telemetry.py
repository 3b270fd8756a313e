"""Traces, metrics and structured logs: what happens to each callback, sent to Application Insights when
APPLICATIONINSIGHTS_CONNECTION_STRING is set (Entra authentication with APPLICATIONINSIGHTS_AUTHENTICATION_STRING).

One trace per callback: the webhook's span context travels in the queue message (`traceparent`), so the worker's span
and its Graph requests join the webhook's trace across the queue hop. Counters: callbacks by outcome (accepted,
rejected, applied, duplicate, unchanged, throttled, retried, deadLettered); a histogram of Graph latency. Log records
carry webhookId, registrationId and graphRequestId as dimensions, never secrets or email addresses.

Without the connection string nothing is exported and the OpenTelemetry API calls are no-ops; the in-process
counts (`snapshot()`) are always kept, for the soak test and benchmarks.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

_counts: Counter[str] = Counter()
_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("connector")
_meter = metrics.get_meter("connector")
_callbacks = _meter.create_counter("connector.callbacks", unit="{callback}", description="Callbacks by outcome")
_graph_latency = _meter.create_histogram(
    "connector.graph.duration", unit="ms", description="Latency of Microsoft Graph requests"
)
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


def record(outcome: str, count: int = 1) -> None:
    """Counts callbacks (webhook events, xAPI requests, queue messages) by outcome."""
    _counts[outcome] += count
    _callbacks.add(count, {"outcome": outcome})


def graph_latency(milliseconds: float, method: str, status: int | None) -> None:
    _graph_latency.record(milliseconds, {"http.request.method": method, "http.response.status_code": status or 0})


def snapshot() -> dict[str, int]:
    return dict(_counts)


def reset() -> None:
    _counts.clear()


def traceparent() -> dict[str, str]:
    """The current span's W3C trace context, to carry in a queue message (empty when nothing is traced)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier


def parent_from(carrier: Mapping[str, Any]) -> Context | None:
    if not carrier.get("traceparent"):
        return None
    return _propagator.extract({k: str(v) for k, v in carrier.items() if k in ("traceparent", "tracestate")})


@contextmanager
def span(
    name: str, kind: SpanKind = SpanKind.INTERNAL, parent: Context | None = None, **attributes: Any
) -> Iterator[Span]:
    """A span (an escaping exception marks it as an error); None-valued attributes are left out."""
    with _tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes={k: v for k, v in attributes.items() if v is not None}
    ) as current:
        yield current
