"""Deployment package size: what ``pip install -r requirements.txt`` puts on disk (runtime dependencies only, not
requirements-dev.txt), and which distributions dominate it.

Installs with pip's defaults (byte-code compiled, as a remote build does) into a cache folder keyed by the
requirements file, the Python version and the platform, so a repeated run only measures the folder. Sizes are
bytes of each distribution's files (from its RECORD), grouped by distribution; the total is every file under the
folder (apparent size, and the blocks allocated on disk, which many small files inflate). Each distribution is
also attributed to the requirement lines that pull it in: a requirement's "exclusive" size is what would leave
with it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT

REQUIREMENTS = ROOT / "requirements.txt"


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "learning-connector-bench"


def _key() -> str:
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(f"{sys.version_info[:2]} {platform.machine()} {sys.platform}".encode())
    return digest.hexdigest()[:16]


def install(target: Path) -> float:
    """pip install into ``target`` unless a complete install is there; returns the seconds it took (0: cached)."""
    marker = target / ".bench-complete"
    if marker.exists():
        return 0.0
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
         "--no-input", "--target", str(target), "-r", str(REQUIREMENTS)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return time.perf_counter() - started


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except OSError:
        return 0


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _closures(target: Path) -> dict[str, set[str]]:
    """For each requirement line, the installed distributions it pulls in (markers evaluated, extras honoured)."""
    from email.parser import Parser

    from packaging.requirements import Requirement

    requires: dict[str, list[Requirement]] = {}
    for info in target.glob("*.dist-info"):
        metadata = Parser().parsestr((info / "METADATA").read_text(encoding="utf-8", errors="replace"))
        requires[_normal(metadata["Name"])] = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    closures: dict[str, set[str]] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        top = Requirement(line)
        seen: set[str] = set()
        todo: list[tuple[str, frozenset[str]]] = [(_normal(top.name), frozenset(top.extras))]
        while todo:
            name, extras = todo.pop()
            if name in seen or name not in requires:
                continue
            seen.add(name)
            for req in requires[name]:
                environments = [{"extra": e} for e in extras] or [{"extra": ""}]
                if req.marker is None or any(req.marker.evaluate(env) for env in environments):
                    todo.append((_normal(req.name), frozenset(req.extras)))
        closures[top.name] = seen
    return closures


def measure(target: Path) -> dict[str, Any]:
    total_bytes = allocated = 0
    files = 0
    for folder, _, names in os.walk(target):
        for name in names:
            path = Path(folder) / name
            total_bytes += _size(path)
            with contextlib.suppress(OSError):
                allocated += path.lstat().st_blocks * 512
            files += 1
    by_dist: dict[str, dict[str, Any]] = {}
    for info in sorted(target.glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        record = info / "RECORD"
        size = count = 0
        if record.exists():
            with record.open(newline="") as handle:
                for row in csv.reader(handle):
                    if row:
                        size += _size(target / row[0])
                        count += 1
        by_dist[_normal(name)] = {"version": version, "bytes": size, "files": count}
    top = sorted(by_dist.items(), key=lambda item: item[1]["bytes"], reverse=True)
    closures = _closures(target)
    pulled_by: dict[str, list[str]] = {}
    for requirement, members in closures.items():
        for member in members:
            pulled_by.setdefault(member, []).append(requirement)
    requirements = []
    for requirement, members in closures.items():
        exclusive = [m for m in members if pulled_by.get(m) == [requirement]]
        requirements.append(
            {
                "name": requirement,
                "closureBytes": sum(by_dist.get(m, {}).get("bytes", 0) for m in members),
                "exclusiveBytes": sum(by_dist.get(m, {}).get("bytes", 0) for m in exclusive),
                "exclusive": sorted(exclusive, key=lambda m: -by_dist.get(m, {}).get("bytes", 0))[:6],
            }
        )
    requirements.sort(key=lambda r: -r["exclusiveBytes"])
    return {
        "totalBytes": total_bytes,
        "allocatedBytes": allocated,
        "files": files,
        "requirements": requirements,
        "distributions": len(by_dist),
        "top": [{"name": n, **d} for n, d in top[:8]],
    }


def run(_infra: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
    target = cache_dir() / f"site-{_key()}"
    target.parent.mkdir(parents=True, exist_ok=True)
    seconds = install(target)
    result = measure(target)
    result.update(folder=str(target), installSeconds=seconds, cached=seconds == 0.0)
    return result


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
