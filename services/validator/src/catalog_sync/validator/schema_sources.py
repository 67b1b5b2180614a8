"""Where product type schemas come from, and the cache of compiled validators.

Sources are asked in order; the first that knows a product type wins. `DirectorySource` reads
`<PRODUCT_TYPE>.json` from PRODUCT_TYPES_DIR (or the bundled samples); the Amazon source
(amazon_definitions.py) fetches the Product Type Definitions API. A product type no source knows,
or one whose schema cannot be read or compiled, becomes a `SchemaUnavailable` that the validator
reports as an error of that item: the worker never crashes on a schema.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

from .issues import ValidationIssue
from .product_type import CompiledProductType, SchemaCompileError

# Amazon product type names: upper-case letters, digits and underscores (HAIRBAND, SHIRT, LUGGAGE_TAG).
# Checked before a name becomes part of a file path or URL.
PRODUCT_TYPE_NAME = re.compile(r"^[A-Z0-9][A-Z0-9_]{0,99}$")

# A schema that failed to load is retried after this long: a file dropped into PRODUCT_TYPES_DIR,
# or Amazon answering again, is picked up without a restart, yet 10,000 items of an unknown
# product type do not mean 10,000 file lookups.
FAILURE_TTL_S = 30.0


class SchemaUnavailable(Exception):
    """No usable schema for an item's product type. `code` is product_type.unknown (no source has
    it) or product_type.unavailable (a source has it but it cannot be read, fetched or compiled)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def issue(self) -> ValidationIssue:
        return ValidationIssue(self.code, self.message, "/product_type")


@dataclass(frozen=True, slots=True)
class LoadedSchema:
    """A schema document as a source found it."""

    schema: dict
    origin: str  # file path or URL, for messages and logs
    identity: str  # same identity → same document → compiled once (path, or Amazon checksum)
    exact_requirements: bool  # False: a LISTING schema standing in for another requirements set
    max_age_s: float | None = None  # ask the source again after this long (None: never)


class SchemaSource(Protocol):
    def load(self, product_type: str, marketplace_id: str, requirements: str) -> LoadedSchema | None:
        """The schema, None when this source does not know the product type; raises
        SchemaUnavailable when it knows it but cannot deliver it."""


def bundled_product_types_dir() -> Path:
    return Path(str(resources.files("catalog_sync.validator") / "product_types"))


class DirectorySource:
    """`<PRODUCT_TYPE>.json` files; `<PRODUCT_TYPE>.<REQUIREMENTS>.json` for another requirements set."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def load(self, product_type: str, marketplace_id: str, requirements: str) -> LoadedSchema | None:
        candidates = [(self.folder / f"{product_type}.json", requirements == "LISTING")]
        if requirements != "LISTING":
            candidates.insert(0, (self.folder / f"{product_type}.{requirements}.json", True))
        for path, exact in candidates:
            try:
                text = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise SchemaUnavailable(
                    "product_type.unavailable",
                    f"the schema of product type {product_type} cannot be read ({path}: {exc.strerror or exc})",
                ) from exc
            try:
                schema = json.loads(text)
            except ValueError as exc:
                raise SchemaUnavailable(
                    "product_type.unavailable",
                    f"the schema of product type {product_type} is not valid JSON ({path}: {exc})",
                ) from exc
            return LoadedSchema(schema, str(path), f"file:{path}", exact)
        return None

    def known(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json") if "." not in p.stem)

    def __str__(self) -> str:
        return f"folder {self.folder}"


@dataclass(frozen=True, slots=True)
class ResolvedProductType:
    compiled: CompiledProductType
    enforce_required: bool


class ProductTypeSchemas:
    """Compiled validators per (product type, marketplace, requirements), built on first use."""

    def __init__(self, sources: Sequence[SchemaSource], *, clock: Callable[[], float] = time.monotonic,
                 on_compiled: Callable[[CompiledProductType], None] | None = None):
        if not sources:
            raise ValueError("at least one product type schema source is needed")
        self._sources = list(sources)
        self._clock = clock
        self._on_compiled = on_compiled
        self._resolved: dict[tuple[str, str, str], tuple[ResolvedProductType | SchemaUnavailable, float | None]] = {}
        self._compiled: dict[str, CompiledProductType] = {}

    def get(self, product_type: str, marketplace_id: str, requirements: str = "LISTING") -> ResolvedProductType:
        """The compiled schema to validate an item against; raises SchemaUnavailable."""
        key = (product_type, marketplace_id, requirements)
        cached = self._resolved.get(key)
        if cached is not None and (cached[1] is None or self._clock() < cached[1]):
            result = cached[0]
        else:
            result, max_age = self._resolve(product_type, marketplace_id, requirements)
            self._resolved[key] = (result, None if max_age is None else self._clock() + max_age)
        if isinstance(result, SchemaUnavailable):
            raise result
        return result

    def _resolve(self, product_type: str, marketplace_id: str, requirements: str):
        if not PRODUCT_TYPE_NAME.match(product_type):
            return SchemaUnavailable(
                "product_type.unknown",
                f"'{product_type[:60]}' is not an Amazon product type name (upper-case letters, digits, underscores)",
            ), None
        try:
            for source in self._sources:
                loaded = source.load(product_type, marketplace_id, requirements)
                if loaded is not None:
                    compiled = self._compile(product_type, loaded)
                    return ResolvedProductType(compiled, loaded.exact_requirements), loaded.max_age_s
        except SchemaUnavailable as exc:
            return exc, FAILURE_TTL_S
        return SchemaUnavailable(
            "product_type.unknown",
            f"product type {product_type} is not known: no schema for it in {' or '.join(map(str, self._sources))}",
        ), FAILURE_TTL_S

    def _compile(self, product_type: str, loaded: LoadedSchema) -> CompiledProductType:
        compiled = self._compiled.get(loaded.identity)
        if compiled is None:
            try:
                compiled = CompiledProductType(product_type, loaded.schema, origin=loaded.origin)
            except SchemaCompileError as exc:
                raise SchemaUnavailable("product_type.unavailable", f"{exc} ({loaded.origin})") from exc
            self._compiled[loaded.identity] = compiled
            if self._on_compiled is not None:
                self._on_compiled(compiled)
        return compiled
