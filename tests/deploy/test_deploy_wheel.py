"""The wheel `pip install .` builds (the Docker image installs it) holds production code only:
no test support, no module that imports a test library, nothing from tests/."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEST_LIBRARIES = {"pytest", "hypothesis", "_pytest", "testcontainers", "playwright"}
TEST_MODULE_NAMES = {"testing", "chaos", "sample_events", "conftest"}
# Left out of the copy the wheel is built from: caches, the environment, earlier builds.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "build", "dist", "*.egg-info",
                                    ".pytest_cache", ".ruff_cache", ".hypothesis", ".demo", "*.db*")


def build_wheel(source: Path, into: Path) -> Path:
    """Build the project's wheel from a copy of `source` (a build writes build/ and *.egg-info
    beside the sources), offline, with the setuptools of this environment."""
    copy = into / "source"
    shutil.copytree(source, copy, ignore=NOT_SOURCE)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--wheel-dir", str(into / "dist"), str(copy)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [wheel] = (into / "dist").glob("*.whl")
    return wheel


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
def wheel(tmp_path_factory) -> Path:
    return build_wheel(ROOT, tmp_path_factory.mktemp("wheel"))


def test_the_wheel_holds_no_test_code(wheel):
    assert files_of_test_code(wheel) == []


def test_the_wheel_holds_the_services_and_their_data(wheel):
    # Guards the check above: an empty or half-built wheel would pass it.
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for expected in ("catalog_sync/cli.py", "catalog_sync/runtime/bus.py", "catalog_sync/runtime/processes.py",
                     "catalog_sync/validator/handler.py", "catalog_sync/submitter/service.py",
                     "catalog_sync/recorder/api.py", "catalog_sync/amazon_emulator/server.py",
                     "catalog_sync/schemas/listing_ready.v1.avsc", "catalog_sync/recorder/static/index.html",
                     "catalog_sync/samples/catalog.jsonl"):
        assert expected in names, f"{expected} missing from {wheel.name}"
