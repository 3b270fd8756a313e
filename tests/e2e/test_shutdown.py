"""Stopping the app: in-flight work finishes and the app's own clients are closed, so the log ends cleanly."""

from __future__ import annotations

import signal

import httpx
import pytest

from devtools.examples import EXAMPLE_1_ASSIGNMENT, REGISTRATION_ID
from tests.e2e.conftest import FUNCTION_KEY
from tests.support.signing import signed_headers

pytestmark = pytest.mark.e2e


def test_a_stopped_app_leaves_no_unclosed_client_session(fresh, sandbox):
    headers = {**signed_headers(EXAMPLE_1_ASSIGNMENT), "x-functions-key": FUNCTION_KEY}
    url = f"{fresh.url}/api/providers/{REGISTRATION_ID}/course-activities"
    assert httpx.post(url, content=EXAMPLE_1_ASSIGNMENT, headers=headers, timeout=30).status_code == 202
    sandbox.admin.wait_for_requests(lambda r: len(r) >= 1, method="PATCH", timeout=20)  # Graph and Storage used

    fresh.process.send_signal(signal.SIGTERM)
    assert fresh.process.wait(30) == 0
    assert fresh.reader is not None
    fresh.reader.join(30)
    log = "".join(fresh.output)
    assert "runner stopped" in log
    assert "Unclosed" not in log, log[-2000:]
