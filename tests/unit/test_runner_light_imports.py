"""The unit tier calls the app's functions through tests/support/functions.py, which takes the runner's index and
output bindings from its light modules: importing those must not import aiohttp or the storage SDK, which only the
runner's HTTP front, queue listeners and host need. Checked in a fresh interpreter, where nothing is imported yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIGHT = [
    "devtools.runner",
    "devtools.runner.config",
    "devtools.runner.routes",
    "devtools.runner.indexing",
    "devtools.runner.newtonsoft",
    "devtools.runner.messages",
    "devtools.runner.invocation",
    "tests.support.functions",
]
HEAVY = "devtools.runner.host"
PROBE = """
import importlib, json, sys
heavy = {}
for name in sys.argv[1:]:
    importlib.import_module(name)
    heavy[name] = sorted(m for m in sys.modules if m.split(".")[0] == "aiohttp" or m.startswith("azure.storage"))[:3]
print(json.dumps(heavy))
"""


def test_the_runner_s_light_modules_import_neither_aiohttp_nor_the_storage_sdk():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *LIGHT, HEAVY], cwd=ROOT, capture_output=True, text=True, check=True
    )
    heavy = json.loads(result.stdout)
    assert {name: heavy[name] for name in LIGHT} == {name: [] for name in LIGHT}
    assert heavy[HEAVY], "the probe sees the modules the runner's host imports"
