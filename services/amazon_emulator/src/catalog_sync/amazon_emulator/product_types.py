"""The product types the emulator knows, and their required attributes.

Amazon answers a submission naming a product type it does not have with status INVALID and issue
4000003 (see listings.py); the emulator can only tell which names exist from what it is given:
the product types of the project's fixtures and of Amazon's own examples, plus any added with
--product-type or --product-types-dir. Required attributes come from product type definition files
(Amazon's JSON Schema 2019-09): only the schema's top-level `required`, reported as 90220;
conditional requirements stay with the validator."""

from __future__ import annotations

import json
from pathlib import Path

# HAIRBAND, BACKPACK: the validator's bundled definitions and the sample catalog; LUGGAGE: the
# model's getListingsItem example; MANUAL_FOOD_MILL_GRINDER: a real definition in ../shared;
# PRODUCT: Amazon's generic type, valid for offer-only submissions (4000004 otherwise).
KNOWN_PRODUCT_TYPES = frozenset({"HAIRBAND", "BACKPACK", "LUGGAGE", "MANUAL_FOOD_MILL_GRINDER", "PRODUCT"})


def load_required(folder: str | Path) -> dict[str, tuple[str, ...]]:
    """Product type (the file's stem) -> its top-level `required` attributes, for every
    <PRODUCT_TYPE>.json in `folder`; each file's product type becomes known."""
    path = Path(folder)
    if not path.is_dir():
        raise SystemExit(f"product types folder {path} does not exist")
    required = {}
    for file in sorted(path.glob("*.json")):
        try:
            schema = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read product type definition {file}: {exc}") from exc
        names = schema.get("required") if isinstance(schema, dict) else None
        required[file.stem] = tuple(str(name) for name in names) if isinstance(names, list) else ()
    return required
