"""One trace per callback across the queue hop, outcome metrics, log dimensions, and nothing personal or secret
in the logs. Exported in-memory here; to Application Insights in Azure."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from devtools.examples import EXAMPLE_1_ASSIGNMENT, REGISTRATION_ID
from tests.support.functions import call_webhook
from tests.support.signing import SECRET, signed_headers
from tests.support.telemetry import span_exporter

_reader = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _in_memory_metrics():
    """The process's OpenTelemetry meter provider (settable once per process), read in memory."""
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[_reader]))


@pytest.fixture
def spans():
    exporter = span_exporter()
    exporter.clear()
    return exporter


def outcome_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for resource in _reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == "connector.callbacks":
                    for point in metric.data.data_points:
                        counts[point.attributes["outcome"]] = counts.get(point.attributes["outcome"], 0) + point.value
    return counts


async def test_the_spans_of_one_callback_share_a_trace_across_the_queue_hop(connector, spans):
    reply = connector.post(REGISTRATION_ID, EXAMPLE_1_ASSIGNMENT)
    message = json.loads(reply.messages[0])
    assert message["traceparent"].startswith("00-")
    assert (await connector.run(reply.messages[0])).error is None

    finished = {s.name: s for s in spans.get_finished_spans()}
    webhook, worker = finished["receive course activity callbacks"], finished["apply course activity update"]
    lookup, patch = finished["Graph GET"], finished["Graph PATCH"]
    trace_ids = {s.context.trace_id for s in (webhook, worker, lookup, patch)}
    assert len(trace_ids) == 1
    assert worker.parent.span_id == webhook.context.span_id
    assert patch.parent.span_id == worker.context.span_id
    assert worker.kind == trace.SpanKind.CONSUMER
    assert patch.attributes["http.response.status_code"] == 204
    assert patch.attributes["connector.graph_request_id"] == connector.patches()[0]["requestId"]
    assert worker.attributes["connector.outcome"] == "applied"


async def test_outcomes_are_counted(connector):
    before = outcome_counts()
    await connector.deliver(REGISTRATION_ID, EXAMPLE_1_ASSIGNMENT)
    body = json.loads(EXAMPLE_1_ASSIGNMENT)
    await connector.deliver(REGISTRATION_ID, body)  # the same content again: no change
    connector.post(REGISTRATION_ID, '{"status": "done"}')
    after = outcome_counts()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta["accepted"] == 2
    assert delta["applied"] == 1
    assert delta["unchanged"] == 1
    assert delta["rejected"] == 1


async def test_graph_latency_is_recorded(connector):
    await connector.deliver(REGISTRATION_ID, EXAMPLE_1_ASSIGNMENT)
    names = {
        metric.name
        for resource in _reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    assert "connector.graph.duration" in names


async def test_log_records_carry_the_webhook_id_provider_and_graph_request_id(connector, caplog):
    caplog.set_level("INFO")
    await connector.deliver(REGISTRATION_ID, EXAMPLE_1_ASSIGNMENT, webhook_id="msg_dimensions")
    applied = next(r for r in caplog.records if "applied to" in r.getMessage())
    assert (applied.webhookId, applied.registrationId) == ("msg_dimensions", REGISTRATION_ID)
    assert applied.graphRequestId == connector.patches()[0]["requestId"]


EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


async def test_no_email_address_or_secret_reaches_the_logs(connector, graph, caplog):
    caplog.set_level("DEBUG")
    personal = {
        "@odata.type": "#microsoft.graph.learningAssignment",
        "externalcourseActivityId": "jane.doe@contoso.com/course-7",
        "status": "inProgress",
        "notes": "Ask jane.doe@contoso.com",
    }
    await connector.deliver(REGISTRATION_ID, personal)  # unknown activity: dead-lettered
    body = json.dumps(personal)
    call_webhook(REGISTRATION_ID, body, signed_headers(body, "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"))
    bad = {**personal, "status": "jane.doe@contoso.com"}
    connector.post(REGISTRATION_ID, bad)
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records
    assert EMAIL.findall(text) == []
    assert SECRET not in text
    assert "whsec_" not in text
    assert "Bearer ey" not in text


def test_application_insights_is_configured_only_when_its_connection_string_is_set():
    script = (
        "from connector.adapters import telemetry; from opentelemetry import trace; "
        "print(telemetry.configure({}), type(trace.get_tracer_provider()).__name__); "
        "print(telemetry.configure({'APPLICATIONINSIGHTS_CONNECTION_STRING': "
        "'InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/'}), "
        "type(trace.get_tracer_provider()).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["False", "ProxyTracerProvider", "True", "TracerProvider"]
