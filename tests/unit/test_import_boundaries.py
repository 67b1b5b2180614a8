"""Architecture boundaries (style.md), checked on the source with `ast`.

import-linter cannot see this layout (one namespace mapped onto several folders), so the same
contracts are enforced here, and `make lint` runs this file.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "catalog_sync.runtime": ROOT / "runtime",
    "catalog_sync.validator": ROOT / "services" / "validator",
    "catalog_sync.submitter": ROOT / "services" / "submitter",
    "catalog_sync.recorder": ROOT / "services" / "recorder",
    "catalog_sync.amazon_emulator": ROOT / "services" / "amazon_emulator",
    "catalog_sync": ROOT / "catalog_sync",
}
SERVICES = ["catalog_sync.validator", "catalog_sync.submitter", "catalog_sync.recorder", "catalog_sync.amazon_emulator"]
# Adapters and wiring: the only service modules allowed to reach I/O libraries.
IO_LIBRARIES = {"kafka", "httpx", "aiohttp", "sqlite3", "psycopg", "uvicorn", "fastapi", "confluent_kafka"}


def modules():
    for package, folder in PACKAGES.items():
        for path in sorted(folder.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            yield name, path


def imports_of(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


ALL = list(modules())


def owner(module: str) -> str | None:
    for service in SERVICES:
        if module == service or module.startswith(service + "."):
            return service
    return None


@pytest.mark.parametrize(("name", "path"), ALL, ids=[n for n, _ in ALL])
def test_services_never_import_each_other(name, path):
    mine = owner(name)
    if mine is None:
        return
    others = {owner(m) for m in imports_of(name, path)} - {None, mine}
    assert not others, f"{name} imports {others}: services share only the runtime and the schemas"


@pytest.mark.parametrize(("name", "path"), ALL, ids=[n for n, _ in ALL])
def test_the_runtime_depends_on_no_service(name, path):
    if not name.startswith("catalog_sync.runtime"):
        return
    bad = {m for m in imports_of(name, path) if owner(m) or m.startswith("catalog_sync.cli")}
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize(("name", "path"), ALL, ids=[n for n, _ in ALL])
def test_only_the_bus_imports_kafka_python(name, path):
    if name == "catalog_sync.runtime.bus":
        return
    kafka = {m for m in imports_of(name, path) if m == "kafka" or m.startswith("kafka.")}
    assert not kafka, f"{name} imports kafka-python; only catalog_sync.runtime.bus may"


DOMAIN_MODULES = [
    "catalog_sync.validator.rules", "catalog_sync.validator.identifiers", "catalog_sync.validator.handler",
    "catalog_sync.submitter.classification", "catalog_sync.submitter.rate", "catalog_sync.submitter.outcomes",
    "catalog_sync.submitter.feeds",
    "catalog_sync.recorder.projection",
]


@pytest.mark.parametrize("name", DOMAIN_MODULES)
def test_domain_cores_import_no_io_library(name):
    path = dict(ALL).get(name)
    assert path is not None, f"{name} is listed as a domain core but does not exist"
    bad = {m.split(".")[0] for m in imports_of(name, path)} & IO_LIBRARIES
    assert not bad, f"{name} is domain code but imports {bad}"


TEST_CODE = {"tests", "pytest", "_pytest", "hypothesis", "testcontainers", "playwright"}


@pytest.mark.parametrize(("name", "path"), ALL, ids=[n for n, _ in ALL])
def test_production_code_imports_no_test_code(name, path):
    bad = {m.split(".")[0] for m in imports_of(name, path)} & TEST_CODE
    assert not bad, f"{name} imports {bad}: test code lives in tests/ and is not shipped"
