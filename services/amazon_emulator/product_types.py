"""Required attributes read from product type definition files (Amazon's JSON Schema 2019-09),
so the emulator reports the same 90220 issues a real product type would for missing attributes.
Only the schema's top-level `required` is used; conditional requirements stay with the validator."""

from __future__ import annotations

import json
from pathlib import Path


def load_required(folder: str | Path) -> dict[str, tuple[str, ...]]:
    path = Path(folder)
    if not path.is_dir():
        raise SystemExit(f"product types folder {path} does not exist")
    required = {}
    for file in sorted(path.glob("*.json")):
        try:
            schema = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SystemExit(f"cannot read product type definition {file}: {exc}") from exc
        if isinstance(schema, dict) and isinstance(schema.get("required"), list):
            required[file.stem] = tuple(str(name) for name in schema["required"])
    return required
