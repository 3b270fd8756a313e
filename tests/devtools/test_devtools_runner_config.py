"""devtools.runner pieces that need no Azurite: host.json, settings, route templates, encodings."""

from __future__ import annotations

import base64
import json

import azure.functions as func
import pytest

from devtools.azurite import connection_string
from devtools.runner import (
    HostConfig,
    QueueOptions,
    RouteTemplate,
    RunnerError,
    build_spec,
    decode_queue_body,
    encode_queue_values,
    expand_connection_string,
    index_functions,
    load_local_settings,
    parse_timespan,
    resolve_binding_expression,
    resolve_connection_string,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:02", 2.0),
        ("00:00:02.500", 2.5),
        ("00:01:00", 60.0),
        ("01:00:00", 3600.0),
        ("1.00:00:01", 86401.0),
        ("-1", None),
        (None, None),
    ],
)
def test_parse_timespan(text, seconds):
    assert parse_timespan(text) == seconds


def test_parse_timespan_rejects_garbage():
    with pytest.raises(ValueError, match="TimeSpan"):
        parse_timespan("2 seconds")


def test_host_defaults_match_the_functions_host():
    config = HostConfig.from_json({"version": "2.0"})
    assert config.route_prefix == "api"
    assert config.function_timeout is None
    assert config.queues == QueueOptions(
        batch_size=16,
        new_batch_threshold=8,
        max_polling_interval=60.0,
        visibility_timeout=0.0,
        max_dequeue_count=5,
        message_encoding="base64",
    )


def test_host_json_values_are_read():
    config = HostConfig.from_json(
        {
            "functionTimeout": "00:05:00",
            "extensions": {
                "http": {"routePrefix": ""},
                "queues": {
                    "batchSize": 10,
                    "maxPollingInterval": "00:00:02",
                    "visibilityTimeout": "00:00:30",
                    "maxDequeueCount": 3,
                    "messageEncoding": "none",
                },
            },
        }
    )
    assert config.route_prefix == ""
    assert config.function_timeout == 300.0
    assert config.queues.batch_size == 10
    assert config.queues.new_batch_threshold == 5  # batchSize / 2
    assert config.queues.max_in_flight == 15
    assert config.queues.max_polling_interval == 2.0
    assert config.queues.visibility_timeout == 30.0
    assert config.queues.max_dequeue_count == 3
    assert config.queues.message_encoding == "none"


def test_host_json_rejects_bad_queue_settings():
    with pytest.raises(RunnerError, match="batchSize"):
        HostConfig.from_json({"extensions": {"queues": {"batchSize": 64}}})
    with pytest.raises(RunnerError, match="messageEncoding"):
        HostConfig.from_json({"extensions": {"queues": {"messageEncoding": "utf8"}}})


def test_local_settings_values_fill_the_environment_but_existing_env_wins(tmp_path):
    path = tmp_path / "local.settings.json"
    path.write_text(
        json.dumps(
            {"IsEncrypted": False, "Values": {"A": "from-file", "B": "from-file"}, "Host": {"LocalHttpPort": 7100}}
        )
    )
    environ = {"A": "from-env"}
    data = load_local_settings(path, environ)
    assert environ == {"A": "from-env", "B": "from-file"}
    assert data["Host"]["LocalHttpPort"] == 7100
    assert load_local_settings(tmp_path / "missing.json", environ) == {}


def test_connection_strings():
    azurite = connection_string(1, 2, 3)
    assert "QueueEndpoint=http://127.0.0.1:2/devstoreaccount1;" in azurite
    assert expand_connection_string("UseDevelopmentStorage=true") == connection_string(10000, 10001, 10002)
    settings = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AzureWebJobsOther": azurite}
    assert resolve_connection_string(None, settings) == connection_string(10000, 10001, 10002)
    assert resolve_connection_string("Other", settings) == azurite
    with pytest.raises(RunnerError, match="Missing"):
        resolve_connection_string("Missing", settings)
    with pytest.raises(RunnerError, match="identity-based"):
        resolve_connection_string("Ident", {"Ident__accountName": "acct"})


def test_binding_expressions_resolve_from_settings():
    assert resolve_binding_expression("%Q%-items", {"Q": "orders"}) == "orders-items"
    with pytest.raises(RunnerError, match="%Nope%"):
        resolve_binding_expression("%Nope%", {})


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("hello/{name}", "hello/bob", {"name": "bob"}),
        ("hello/{name}", "HELLO/bob", {"name": "bob"}),
        ("hello/{name}", "hello/a%20b", {"name": "a b"}),
        ("hello/{name}", "hello", None),
        ("hello/{name}", "hello/bob/extra", None),
        ("items/{id:int}", "items/42", {"id": "42"}),
        ("items/{id:int}", "items/x", None),
        ("items/{id:int:min(10)}", "items/9", None),
        ("items/{id:int:min(10)}", "items/10", {"id": "10"}),
        ("items/{id}/{label?}", "items/1", {"id": "1"}),
        ("items/{id}/{label?}", "items/1/red", {"id": "1", "label": "red"}),
        ("items/{id}/{label=blue}", "items/1", {"id": "1", "label": "blue"}),
        ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files/{name}.{ext}", "files/report.final.pdf", {"name": "report.final", "ext": "pdf"}),
        ("g/{id:guid}", "g/0f8fad5b-d9cb-469f-a165-70867728950e", {"id": "0f8fad5b-d9cb-469f-a165-70867728950e"}),
        ("g/{id:guid}", "g/nope", None),
        ("a/{b:regex(^x\\d+$)}", "a/x12", {"b": "x12"}),
        ("a/{b:regex(^x\\d+$)}", "a/y12", None),
    ],
)
def test_route_templates(template, path, expected):
    assert RouteTemplate(template).match(path) == expected


def test_literal_routes_take_precedence_over_parameters():
    routes = sorted(
        [RouteTemplate("users/{id}"), RouteTemplate("users/me"), RouteTemplate("users/{id:int}")],
        key=lambda r: r.precedence,
    )
    assert [r.template for r in routes] == ["users/me", "users/{id:int}", "users/{id}"]


def test_queue_values_are_encoded_per_message_encoding():
    assert encode_queue_values("héllo", "base64") == [base64.b64encode("héllo".encode()).decode()]
    assert encode_queue_values("héllo", "none") == ["héllo"]
    assert encode_queue_values(b"\x00\x01", "base64") == ["AAE="]
    assert encode_queue_values(["a", "b"], "none") == ["a", "b"]
    assert encode_queue_values(func.QueueMessage(body="q"), "none") == ["q"]
    assert encode_queue_values(None, "base64") == []
    with pytest.raises(NotImplementedError):
        encode_queue_values({"not": "allowed"}, "none")


def test_queue_bodies_are_decoded_per_message_encoding():
    assert decode_queue_body("aGk=", "base64") == b"hi"
    assert decode_queue_body("aGk=", "none") == b"aGk="
    with pytest.raises(ValueError, match="base64"):
        decode_queue_body("not base64 !!", "base64")


def test_specs_describe_triggers_and_outputs(monkeypatch):
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.queue_trigger(arg_name="msg", queue_name="%IN_QUEUE%", connection="Store")
    @app.queue_output(arg_name="out", queue_name="Out-Q", connection="Store")
    async def handler(msg: str, out: func.Out[str]) -> None: ...

    @app.route()
    def no_route(req: func.HttpRequest) -> str:
        return ""

    [queue_fn, http_fn] = index_functions(app)
    assert index_functions(app) == [queue_fn, http_fn]  # cached: get_functions() is called once
    spec = build_spec(queue_fn, {"IN_QUEUE": "Orders"})
    assert spec.trigger_type == "queueTrigger"
    assert spec.queue_name == "orders"
    assert spec.connection == "Store"
    assert spec.is_async
    assert spec.trigger_annotation is str
    assert [(o.name, o.queue_name, o.connection) for o in spec.queue_outputs] == [("out", "out-q", "Store")]
    http = build_spec(http_fn, {})
    assert http.route is not None
    assert http.route.template == "no_route"  # the host's default route is the function name
    assert http.methods is None
    assert http.auth_level == "ANONYMOUS"
    assert not http.is_async
