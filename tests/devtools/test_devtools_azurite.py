"""devtools.azurite: a real Azurite from node_modules on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from devtools.azurite import REPO_ROOT, AzuriteError, start_azurite


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _blob_answers(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/devstoreaccount1?comp=list", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:  # unauthenticated: Azurite still answers
        return exc.code


def test_all_three_services_work_and_stop_releases_the_ports():
    with start_azurite() as azurite:
        blob, queue, table = azurite.ports
        assert len({blob, queue, table}) == 3
        assert 0 not in azurite.ports
        for port in azurite.ports:
            assert f":{port}/devstoreaccount1" in azurite.connection_string
        assert azurite.connection_string.startswith("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;")

        q = QueueClient.from_connection_string(azurite.connection_string, "smoke")
        q.create_queue()
        q.send_message("hello")
        assert q.receive_message().content == "hello"
        tables = TableServiceClient.from_connection_string(azurite.connection_string)
        tables.create_table("smoke").create_entity({"PartitionKey": "p", "RowKey": "r", "v": 1})
        assert tables.get_table_client("smoke").get_entity("p", "r")["v"] == 1
        assert _blob_answers(blob) in (200, 403)
    assert not azurite.running
    assert not any(_accepts(port) for port in (blob, queue, table))


def test_two_instances_side_by_side_get_different_ports():
    with start_azurite() as first, start_azurite() as second:
        assert set(first.ports).isdisjoint(second.ports)
        QueueServiceClient.from_connection_string(first.connection_string).create_queue("only-in-first")
        names = [q.name for q in QueueServiceClient.from_connection_string(second.connection_string).list_queues()]
        assert names == []


def test_location_persists_data_across_restarts(tmp_path):
    with start_azurite(location=tmp_path / "data") as azurite:
        QueueServiceClient.from_connection_string(azurite.connection_string).create_queue("kept")
    assert any((tmp_path / "data").iterdir())
    with start_azurite(location=tmp_path / "data") as azurite:
        names = [q.name for q in QueueServiceClient.from_connection_string(azurite.connection_string).list_queues()]
    assert names == ["kept"]


def test_missing_node_modules_says_run_npm_ci(tmp_path):
    with pytest.raises(AzuriteError, match="npm ci"):
        start_azurite(root=tmp_path)


def test_busy_port_is_a_clear_error():
    with start_azurite() as azurite, pytest.raises(AzuriteError, match="exited"):
        start_azurite(ports=(azurite.blob_port, 0, 0), startup_timeout=30)


def test_cli_prints_the_connection_string_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.azurite", "--free-ports"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        assert line, "no connection string printed within 60 s"
        conn = line[0].strip()
        assert "QueueEndpoint=http://127.0.0.1:" in conn
        QueueServiceClient.from_connection_string(conn).create_queue("cli")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        queue_port = int(conn.split("QueueEndpoint=http://127.0.0.1:")[1].split("/")[0])
        assert not _accepts(queue_port)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_repo_root_has_azurite_installed():
    # The launcher resolves node_modules from the repo root, not from the current directory.
    assert (Path(REPO_ROOT) / "node_modules" / ".bin" / "azurite").exists()
