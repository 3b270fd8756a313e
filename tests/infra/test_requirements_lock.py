"""requirements.lock against requirements.txt, the deployment and the environment the tests run in.

requirements.txt keeps compatible ranges (the source); requirements.lock pins every package the deployment installs,
with hashes (scripts/lock writes it). The deployment installs the lock (azure.yaml), and so does scripts/bootstrap, so
that CI tests exactly what is deployed.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.bicep_text import BicepFile, parse_yaml_subset, property_value

ROOT = Path(__file__).resolve().parents[2]
LOCK_TEXT = (ROOT / "requirements.lock").read_text()
# The Python version the template deploys, e.g. 3.11.
RUNTIME = property_value(BicepFile.read(ROOT / "infra" / "main.bicep").declarations["api"], "runtimeVersion").strip("'")


def _requirements(path: Path) -> dict[str, Requirement]:
    """The requirements a pip requirements file names directly (options and includes left out)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith(("#", "-")):
            requirement = Requirement(line)
            found[canonicalize_name(requirement.name)] = requirement
    return found


def _lock() -> dict[str, tuple[str, list[str], list[str]]]:
    """Locked package -> (version, hashes, what it is there for: `-r requirements.txt` or the packages needing it)."""
    entries = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK_TEXT.split("\n", 2)[2]):
        pin = re.match(r"([A-Za-z0-9][\w.-]*)==([^\s\\;]+)", block)
        assert pin, f"requirements.lock: not a pinned entry: {block.splitlines()[0]!r}"
        comments = [line.strip()[1:].strip() for line in block.splitlines() if line.strip().startswith("#")]
        via = [reason for comment in comments if (reason := comment.removeprefix("via").strip())]
        entries[canonicalize_name(pin.group(1))] = (pin.group(2), re.findall(r"--hash=(\S+)", block), via)
    return entries


REQUIREMENTS = _requirements(ROOT / "requirements.txt")
LOCK = _lock()


def test_the_lock_was_written_by_scripts_lock():
    assert LOCK_TEXT.splitlines()[1] == "#    scripts/lock"


def test_the_lock_names_exactly_the_packages_requirements_txt_names():
    # Fails when a package is added to or removed from requirements.txt and scripts/lock was not run.
    direct = {name for name, (_, _, via) in LOCK.items() if "-r requirements.txt" in via}
    assert (sorted(REQUIREMENTS.keys() - direct), sorted(direct - REQUIREMENTS.keys())) == ([], [])


@pytest.mark.parametrize("name", sorted(REQUIREMENTS))
def test_each_locked_version_is_in_the_range_requirements_txt_allows(name):
    # Fails when a range in requirements.txt changes so that the locked version no longer fits.
    requirement = REQUIREMENTS[name]
    assert LOCK[name][0] in requirement.specifier, f"{requirement} but the lock has {LOCK[name][0]}: run scripts/lock"


def test_every_locked_package_has_hashes():
    unhashed = [name for name, (_, hashes, _) in LOCK.items() if not hashes]
    assert (unhashed, {h.split(":")[0] for _, hashes, _ in LOCK.values() for h in hashes}) == ([], {"sha256"})


def test_the_lock_is_resolved_for_the_runtime_the_template_deploys():
    assert f"--python-version {RUNTIME} " in (ROOT / "scripts" / "lock").read_text()


def test_the_environment_has_exactly_the_locked_versions():
    # scripts/bootstrap installs the lock with hash checking; a development tool must not have moved a runtime package.
    def installed(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    moved = {name: (version, installed(name)) for name, (version, _, _) in LOCK.items() if installed(name) != version}
    assert moved == {}, "locked version, installed version"


# ----------------------------------------------------------------------------------------------------------------
# The deployment installs the lock (azd local build), not requirements.txt
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_service():
    return parse_yaml_subset((ROOT / "azure.yaml").read_text())["services"]["api"]


def test_azd_deploys_the_folder_as_built_without_a_remote_build(api_service):
    # A remote build would install requirements.txt's ranges as they resolve on the day of the deployment.
    assert api_service["remoteBuild"] == "false"


@pytest.mark.parametrize("platform", ["posix", "windows"])
def test_the_package_step_installs_the_lock_with_hash_checking_for_the_runtime(api_service, platform):
    run = api_service["hooks"]["prepackage"][platform]["run"]
    install = next(line for line in run.splitlines() if "pip install" in line)
    wanted = [
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "--platform manylinux2014_x86_64",
        f"--python-version {RUNTIME}",
        "--implementation cp",
        "--target .python_packages/lib/site-packages",
        "-r requirements.lock",
    ]
    assert [option for option in wanted if option not in install] == []


def test_the_installed_packages_are_deployed_and_not_committed():
    not_deployed = (ROOT / ".funcignore").read_text().split()
    not_committed = (ROOT / ".gitignore").read_text().split()
    assert (".python_packages" in not_deployed, ".python_packages/" in not_committed) == (False, True)
