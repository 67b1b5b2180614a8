"""Fixtures for the validator's unit tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog_sync.validator.schema_sources import (
    DirectorySource,
    ProductTypeSchemas,
    bundled_product_types_dir,
)
from catalog_sync.validator.validation import ItemValidator


@pytest.fixture
def bundled_validator() -> ItemValidator:
    return ItemValidator(ProductTypeSchemas([DirectorySource(bundled_product_types_dir())]))


@pytest.fixture
def schema_dir(tmp_path: Path):
    """Factory: write product type schemas into a folder, get a validator over that folder."""

    def make(**schemas: dict) -> ItemValidator:
        for name, document in schemas.items():
            (tmp_path / f"{name}.json").write_text(json.dumps(document))
        return ItemValidator(ProductTypeSchemas([DirectorySource(tmp_path)]))

    return make
