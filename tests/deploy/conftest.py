"""Fixtures for the deploy/ checks: the files as a user's tools would read them."""

from __future__ import annotations

import shutil

import pytest
import yaml
from deploy_facts import DEPLOY

from tests.support.requirements import require


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def k8s_docs() -> list[tuple[str, dict]]:
    """(file name, document) for every manifest in deploy/k8s."""
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return docs


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    require(path is not None, "promtool not installed (Debian package `prometheus`; .ci/install-tools.sh)")
    return path
