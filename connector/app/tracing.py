"""What happens to each callback, as OpenTelemetry sees it: spans, counters of outcomes, Graph latency, and the trace
context that travels in a queue message. The OpenTelemetry API only: without a configured SDK every call is a no-op
(connector.adapters.telemetry sends it all to Application Insights when that is set up).

One trace per callback: the webhook's span context travels in the queue message (`traceparent`), so the worker's span
and its Graph requests join the webhook's trace across the queue hop. Counters: callbacks by outcome (accepted,
rejected, applied, duplicate, unchanged, throttled, retried, deadLettered); a histogram of Graph latency.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("connector")
_meter = metrics.get_meter("connector")
_callbacks = _meter.create_counter("connector.callbacks", unit="{callback}", description="Callbacks by outcome")
_graph_latency = _meter.create_histogram(
    "connector.graph.duration", unit="ms", description="Latency of Microsoft Graph requests"
)
CONSUMER, CLIENT = SpanKind.CONSUMER, SpanKind.CLIENT


def record(outcome: str, count: int = 1) -> None:
    """Counts callbacks (webhook events, xAPI requests, queue messages) by outcome."""
    _callbacks.add(count, {"outcome": outcome})


def graph_latency(milliseconds: float, method: str, status: int | None) -> None:
    _graph_latency.record(milliseconds, {"http.request.method": method, "http.response.status_code": status or 0})


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
    name: str,
    attributes: Mapping[str, Any],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
) -> Iterator[Span]:
    """A span (an escaping exception marks it as an error); None-valued attributes are left out."""
    with _tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes={k: v for k, v in attributes.items() if v is not None}
    ) as current:
        yield current
