"""The function app as the host indexes it: names, triggers, bindings, and the types the Python worker checks."""

from __future__ import annotations

import inspect
import json
import typing

import azure.functions as func
from azure.functions import meta

from tests.support.functions import indexed


def test_the_app_declares_the_contracts_routes_and_queues():
    functions = indexed()
    webhook = json.loads(functions["course_activity_webhook"].get_function_json())
    worker = json.loads(functions["apply_course_activity_update"].get_function_json())
    trigger = next(b for b in webhook["bindings"] if b["type"] == "httpTrigger")
    assert trigger["route"] == "providers/{registrationId}/course-activities"
    assert trigger["methods"] == ["POST"]
    assert trigger["authLevel"] == "FUNCTION"
    out = next(b for b in webhook["bindings"] if b["type"] == "queue")
    assert (out["queueName"], out["connection"]) == ("course-activity-updates", "AzureWebJobsStorage")
    queue_trigger = next(b for b in worker["bindings"] if b["type"] == "queueTrigger")
    assert (queue_trigger["queueName"], queue_trigger["connection"]) == (
        "course-activity-updates",
        "AzureWebJobsStorage",
    )
    poison = next(b for b in worker["bindings"] if b["type"] == "queue")
    assert poison["queueName"] == "course-activity-updates-poison"


def test_every_binding_annotation_passes_the_workers_type_checks():
    """The Python worker refuses to load a function whose annotations its converters reject (e.g. Out[list[str]])."""
    registry = meta.get_binding_registry()
    for function in indexed().values():
        user_function = function.get_user_function()
        hints = typing.get_type_hints(user_function)
        signature = inspect.signature(user_function)
        for binding in json.loads(function.get_function_json())["bindings"]:
            name = binding["name"]
            if name == "$return":
                continue
            assert name in signature.parameters, f"{function.get_function_name()}: no parameter {name}"
            converter = registry.get(binding["type"])
            annotation = hints[name]
            if binding["direction"] == "OUT":
                assert typing.get_origin(annotation) is func.Out
                (inner,) = typing.get_args(annotation)
                assert converter.check_output_type_annotation(inner), (function.get_function_name(), name, inner)
            else:
                assert converter.check_input_type_annotation(annotation), (function.get_function_name(), name)


def test_host_json_uses_the_v4_extension_bundle_and_explicit_queue_settings():
    with open("host.json") as f:
        host = json.load(f)
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] >= 3
    assert queues["messageEncoding"] == "none"
    assert set(queues) >= {"batchSize", "visibilityTimeout", "maxDequeueCount", "maxPollingInterval"}
