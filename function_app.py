"""Azure Functions entry point (Python v2 model): triggers and bindings only; the logic lives in connector/.

No `from __future__ import annotations` here: the Python worker reads these annotations to check the bindings.
"""

import json
import typing

import azure.functions as func

if typing.TYPE_CHECKING:
    from connector.app.platform_intake import PlatformRequest

from connector import bootstrap
from connector.adapters import telemetry
from connector.app import status, webhook
from connector.app.apply_update import Delivery
from connector.domain.envelope import POISON_QUEUE_NAME, QUEUE_NAME
from connector.settings import STORAGE_SETTING

bootstrap.settings()  # a bad setting stops the app at start-up, naming the setting
telemetry.configure()  # Application Insights, when APPLICATIONINSIGHTS_CONNECTION_STRING is set

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name("course_activity_webhook")
@app.route(route="providers/{registrationId}/course-activities", methods=["POST"])
@app.queue_output(arg_name="updates", queue_name=QUEUE_NAME, connection=STORAGE_SETTING)
def course_activity_webhook(
    req: func.HttpRequest,
    updates: func.Out[typing.List[str]],  # noqa: UP006 (the worker accepts only typing.List)
) -> func.HttpResponse:
    """A provider's callback: 202 once every event is on the queue, or 400/401/404/411/413/415 saying why not."""
    headers = {name.lower(): value for name, value in req.headers.items()}
    reply = webhook.receive(bootstrap.settings(), req.route_params["registrationId"], headers, req.get_body())
    if reply.messages:
        updates.set(reply.messages)
    return _json(reply.status, reply.body)


@app.function_name("course_activity_status")
@app.route(route="providers/{registrationId}/course-activities/{id}", methods=["GET"])
async def course_activity_status(req: func.HttpRequest) -> func.HttpResponse:
    """What the connector knows about one activity: last applied values, pending or failed, and why. The provider's
    own credential (its webhook signature over the empty body, or its LRS key and secret) besides the Functions key."""
    params = req.route_params
    headers = {name.lower(): value for name, value in req.headers.items()}
    reply = await status.receive(
        bootstrap.settings(), bootstrap.state_store(), params["registrationId"], params["id"], headers
    )
    return _json(reply.status, reply.body, reply.headers)


@app.function_name("xapi_statements")
@app.route(
    route="providers/{registrationId}/xapi/statements",
    methods=["POST", "PUT", "GET"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
async def xapi_statements(req: func.HttpRequest) -> func.HttpResponse:
    """The LRS statements resource (write-only). Anonymous for the platform: LRS clients cannot add a ?code=;
    each request authenticates with the provider's HTTP Basic credentials instead."""
    from connector.app import lrs  # on first use: most apps take no xAPI, and its schemas cost start-up time

    if req.method == "GET":
        reply = lrs.only_receives()
    else:
        headers = {name.lower(): value for name, value in req.headers.items()}
        request = lrs.LrsRequest(
            req.route_params["registrationId"], req.method, headers, dict(req.params), req.get_body()
        )
        reply = await lrs.receive_statements(
            bootstrap.settings(), bootstrap.statement_records(), bootstrap.enqueue, request
        )
    return _json(reply.status, reply.body, reply.headers)


@app.function_name("xapi_about")
@app.route(route="providers/{registrationId}/xapi/about", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def xapi_about(req: func.HttpRequest) -> func.HttpResponse:
    """The LRS about resource: which xAPI versions this endpoint speaks."""
    from connector.app import lrs

    reply = lrs.about()
    return _json(reply.status, reply.body, reply.headers)


@app.function_name("caliper_events")
@app.route(route="providers/{registrationId}/caliper", methods=["POST", "GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def caliper_events(req: func.HttpRequest) -> func.HttpResponse:
    """IMS Caliper envelopes (POST), and the endpoint's configuration (GET). Anonymous for the platform: a Caliper
    sensor sends an API key (the provider's caliperKeys), or Canvas signs the envelope; neither can add a ?code=."""
    from connector.app import caliper_intake  # on first use, as the other formats

    if req.method == "GET":
        reply = caliper_intake.configuration()
    else:
        reply = await caliper_intake.receive_envelope(
            bootstrap.settings(), bootstrap.platform_queues(), bootstrap.key_sets(), _platform_request(req)
        )
    return _json(reply.status, reply.body, reply.headers)


@app.function_name("scorm_cloud_postbacks")
@app.route(route="providers/{registrationId}/scorm-cloud", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def scorm_cloud_postbacks(req: func.HttpRequest) -> func.HttpResponse:
    """SCORM Cloud registration postbacks, authenticated by the provider's scormCloudCredentials (form fields or
    HTTP Basic): 200 for anything readable, 401 only for bad credentials, never a redirect."""
    from connector.app import scorm_cloud_intake

    reply = await scorm_cloud_intake.receive_postback(
        bootstrap.settings(), bootstrap.platform_queues(), _platform_request(req)
    )
    return _json(reply.status, reply.body, reply.headers)


@app.function_name("canvas_live_events")
@app.route(route="providers/{registrationId}/canvas", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def canvas_live_events(req: func.HttpRequest) -> func.HttpResponse:
    """Canvas Live Events in Canvas's format, signed by Instructure (verified against the provider's canvasJwksUrl)
    or, where the provider allows it, unsigned."""
    from connector.app import canvas_intake

    reply = await canvas_intake.receive_event(
        bootstrap.settings(), bootstrap.platform_queues(), bootstrap.key_sets(), _platform_request(req)
    )
    return _json(reply.status, reply.body, reply.headers)


@app.function_name("apply_course_activity_update")
@app.queue_trigger(arg_name="msg", queue_name=QUEUE_NAME, connection=STORAGE_SETTING)
@app.queue_output(arg_name="poison", queue_name=POISON_QUEUE_NAME, connection=STORAGE_SETTING)
async def apply_course_activity_update(msg: func.QueueMessage, poison: func.Out[str]) -> None:
    """Applies one update to Graph; a transient failure raises (the host retries), a permanent one dead-letters."""
    delivery = Delivery(msg.get_body(), msg.id or "", msg.dequeue_count or 1, msg.insertion_time)
    outcome = await bootstrap.worker().handle(delivery)
    if outcome.dead_letter is not None:
        poison.set(outcome.dead_letter)


@app.function_name("reconcile_course_activities")
@app.timer_trigger(arg_name="timer", schedule="%CONNECTOR_RECONCILE_SCHEDULE%", run_on_startup=False)
async def reconcile_course_activities(timer: func.TimerRequest) -> None:
    """Puts Graph right where it differs from the connector (UTC schedule in CONNECTOR_RECONCILE_SCHEDULE; off with
    the app setting AzureWebJobs.reconcile_course_activities.Disabled=true): slices on the queue, done by the worker."""
    await bootstrap.start_reconciliation()


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> func.HttpResponse:
    if status == 204 or body is None:
        return func.HttpResponse(status_code=status, headers=headers)
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json", headers=headers)


def _platform_request(req: func.HttpRequest) -> "PlatformRequest":
    from connector.app.platform_intake import PlatformRequest

    headers = {name.lower(): value for name, value in req.headers.items()}
    return PlatformRequest(req.route_params["registrationId"], headers, req.get_body())
