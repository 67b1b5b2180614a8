"""The wheels of the product's distributions (one per folder; the images install them) hold
production code only: no test support, no module that imports a test library, nothing from
tests/. Each declares only the dependencies its code needs, and all share one version."""

from __future__ import annotations

import ast
import email
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_LIBRARIES = {"pytest", "hypothesis", "_pytest", "testcontainers", "playwright"}
TEST_MODULE_NAMES = {"testing", "chaos", "sample_events", "conftest"}
# Left out of the copy the wheel is built from: caches, the environment, earlier builds.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "build", "dist", "*.egg-info",
                                    ".pytest_cache", ".ruff_cache", ".hypothesis", ".demo", "*.db*")


DISTRIBUTIONS = ("schemas", "runtime", "services/validator", "services/submitter", "services/recorder",
                 "services/amazon_emulator", "tools")


def build_wheels(into: Path) -> dict[str, Path]:
    """Build every distribution's wheel from a copy of the repository (a build writes build/ and
    *.egg-info beside the sources), offline, with the setuptools of this environment."""
    copy = into / "source"
    shutil.copytree(ROOT, copy, ignore=NOT_SOURCE)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--wheel-dir", str(into / "dist"), *(str(copy / d) for d in DISTRIBUTIONS)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = {d: tomllib.loads((ROOT / d / "pyproject.toml").read_text())["project"]["name"] for d in DISTRIBUTIONS}
    return {d: next((into / "dist").glob(f"{names[d].replace('-', '_')}-*.whl")) for d in DISTRIBUTIONS}


def requirements(wheel: Path) -> set[str]:
    """The distributions a wheel requires (extras' requirements left out)."""
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(name))
    required = set()
    for line in metadata.get_all("Requires-Dist") or []:
        if "extra ==" not in line:
            required.add(normalized(re.split(r"[\s;\[=<>!~]", line, maxsplit=1)[0]))
    return required


def normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()  # PEP 503


def imported_top_levels(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def files_of_test_code(wheel: Path) -> list[str]:
    """Every file of the wheel that is test code, with the reason."""
    problems = []
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            path = PurePosixPath(name)
            if "tests" in path.parts or "test" in path.parts:
                problems.append(f"{name}: under a tests folder")
            if path.suffix == ".py" and (path.stem in TEST_MODULE_NAMES or path.stem.startswith("test_")):
                problems.append(f"{name}: named like test code")
            if path.suffix == ".py":
                libraries = imported_top_levels(archive.read(name).decode("utf-8")) & TEST_LIBRARIES
                if libraries:
                    problems.append(f"{name}: imports {sorted(libraries)}")
    return problems


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    return build_wheels(tmp_path_factory.mktemp("wheels"))


def test_the_wheels_hold_no_test_code(wheels):
    assert [problem for wheel in wheels.values() for problem in files_of_test_code(wheel)] == []


# Guards the check above: an empty or half-built wheel would pass it.
EXPECTED = {
    "schemas": ["catalog_sync/schemas/listing_ready.v1.avsc"],
    "runtime": ["catalog_sync/cli.py", "catalog_sync/runtime/bus.py", "catalog_sync/runtime/processes.py"],
    "services/validator": ["catalog_sync/validator/handler.py", "catalog_sync/validator/product_types/HAIRBAND.json"],
    "services/submitter": ["catalog_sync/submitter/service.py"],
    "services/recorder": ["catalog_sync/recorder/api.py", "catalog_sync/recorder/static/index.html"],
    "services/amazon_emulator": ["catalog_sync/amazon_emulator/server.py"],
    "tools": ["catalog_sync/publisher.py", "catalog_sync/samples/catalog.jsonl"],
}


@pytest.mark.parametrize("folder", DISTRIBUTIONS)
def test_each_wheel_holds_its_own_code_and_data(wheels, folder):
    with zipfile.ZipFile(wheels[folder]) as archive:
        names = set(archive.namelist())
    for expected in EXPECTED[folder]:
        assert expected in names, f"{expected} missing from {wheels[folder].name}"
    # A portion of the namespace: an __init__.py here would hide the other distributions' packages.
    assert "catalog_sync/__init__.py" not in names
    others = {other for other, files in EXPECTED.items() if other != folder for file in files}
    for other in others:
        for file in EXPECTED[other]:
            assert file not in names, f"{file} of {other} is also in {wheels[folder].name}"


# What each service must not pull into its image.
NOT_NEEDED = {
    "services/validator": {"psycopg", "aiohttp", "fastapi", "uvicorn", "confluent-kafka"},
    "services/submitter": {"psycopg", "fastapi", "uvicorn", "jsonschema-rs", "confluent-kafka", "httpx"},
    "services/recorder": {"aiohttp", "jsonschema-rs", "confluent-kafka"},
    "runtime": {"psycopg", "aiohttp", "fastapi", "uvicorn", "jsonschema-rs", "httpx", "confluent-kafka"},
}


@pytest.mark.parametrize("folder", sorted(NOT_NEEDED))
def test_each_service_requires_only_what_it_uses(wheels, folder):
    assert requirements(wheels[folder]) & NOT_NEEDED[folder] == set()
    if folder.startswith("services/"):
        assert "catalog-sync-runtime" in requirements(wheels[folder])
        # Services share only the runtime and the schemas.
        assert not {r for r in requirements(wheels[folder]) if r.startswith("catalog-sync-")} - {"catalog-sync-runtime"}


def test_every_distribution_has_one_version():
    versions = {d: tomllib.loads((ROOT / d / "pyproject.toml").read_text())["project"]["version"] for d in DISTRIBUTIONS}
    assert len(set(versions.values())) == 1, versions


@pytest.mark.parametrize("folder", DISTRIBUTIONS)
def test_each_wheel_declares_every_library_its_code_imports(wheels, folder):
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    declared = requirements(wheels[folder])
    optional_extras = {"confluent_kafka", "uvloop"}  # imported inside a try or only by the local brokers
    undeclared = {}
    with zipfile.ZipFile(wheels[folder]) as archive:
        for name in archive.namelist():
            if name.endswith(".py"):
                for module in imported_top_levels(archive.read(name).decode("utf-8")):
                    if module in sys.stdlib_module_names or module == "catalog_sync" or module in optional_extras:
                        continue
                    dists = {normalized(d) for d in owners.get(module, [module])}
                    if not dists & declared:
                        undeclared.setdefault(module, []).append(name)
    assert undeclared == {}, f"{folder} imports libraries its pyproject.toml does not require: {undeclared}"
