"""One product type schema, compiled once: jsonschema-rs for JSON Schema 2019-09, plus the
precompiled pass for Amazon's keywords. Validating is then a pure function of the attributes."""

from __future__ import annotations

import jsonschema_rs

from .amazon_vocabulary import AmazonKeywordChecks
from .issues import ValidationIssue
from .schema_errors import issues_from_error


class SchemaCompileError(ValueError):
    """The schema is not a usable JSON Schema (bad regex, bad $ref, wrong keyword types)."""


class CompiledProductType:
    def __init__(self, name: str, schema: dict, *, origin: str = ""):
        if not isinstance(schema, dict):
            raise SchemaCompileError(f"the schema of {name} is not a JSON object")
        self.name = name
        self.origin = origin
        self.attribute_names: frozenset[str] = frozenset(schema.get("properties") or ())
        try:
            # Draft 2019-09 explicitly: Amazon's `$schema` URI is not addressable and must never be
            # fetched (offline=True also blocks remote `$ref`s). Formats are assertions here, as
            # Amazon's validators treat them.
            self._validator = jsonschema_rs.Draft201909Validator(schema, offline=True, validate_formats=True)
        except (ValueError, jsonschema_rs.ReferencingError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SchemaCompileError(f"the schema of {name} cannot be compiled: {reason}") from exc
        self._amazon = AmazonKeywordChecks(schema)
        # Keywords the Amazon pass cannot place (under conditional branches): surfaced, not ignored.
        self.unchecked_keywords: tuple[str, ...] = tuple(self._amazon.unchecked)

    def validate(self, attributes: dict, *, enforce_required: bool = True) -> list[ValidationIssue]:
        """Every schema problem of `attributes` (unordered; `issues.finalize` orders them).

        `enforce_required=False` validates attribute values only, for a requirements set
        (LISTING_OFFER_ONLY, LISTING_PRODUCT_ONLY) whose own schema is not available: the
        LISTING schema's top-level required attributes do not apply to a partial listing.
        """
        issues = self._amazon.check(attributes)
        # is_valid stops at the first error: the common, valid case never builds error objects.
        if self._validator.is_valid(attributes):
            return issues
        for error in self._validator.iter_errors(attributes):
            if not enforce_required and error.kind.name == "required" and not error.instance_path:
                continue
            issues.extend(issues_from_error(error))
        return issues
