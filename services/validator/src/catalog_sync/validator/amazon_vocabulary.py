"""Amazon's validation keywords, checked in one precompiled pass beside jsonschema-rs.

Product type schemas add three validation keywords to JSON Schema 2019-09 (meta-schema vocabulary
v1): `maxUniqueItems` with `selectors`, `maxUtf8ByteLength` and `minUtf8ByteLength`. Passing them
to jsonschema-rs as Python keyword callbacks costs several times its own validation, so instead the
schema is walked once at compile time to collect the instance locations that carry them, and an
item is checked only at those locations.

`minUniqueItems` is not enforced: none of Amazon's reference validators implements it, and
`minItems` already states the same floor in every schema seen. Informational keywords
(`editable`, `hidden`, `enumNames`, `$lifecycle`, ...) need nothing: validation ignores them.

Locations are followed through `properties`, `items`, local `$ref` and plain `allOf`. A keyword
under a conditional branch (`if`/`then`/`else`, `anyOf`, `oneOf`, `not`, `contains`) would need the
branch's applicability per item; Amazon's schemas put none there, and any that appears is listed
in `AmazonKeywordChecks.unchecked` so the loader can say so instead of silently passing it.
"""

from __future__ import annotations

import json

from .issues import ValidationIssue, attribute_pointer, location, quote

KEYWORDS = ("maxUniqueItems", "maxUtf8ByteLength", "minUtf8ByteLength")
_BRANCHES = ("if", "then", "else", "anyOf", "oneOf", "not", "contains", "additionalProperties",
             "patternProperties", "dependentSchemas", "unevaluatedProperties", "unevaluatedItems")

Tokens = tuple[str | int, ...]


class _Node:
    """The keywords at one instance location, and the locations below it that carry any. Limits
    are plain fields (not callbacks) so the walk checks them inline: it runs for every item."""

    __slots__ = ("unique", "max_bytes", "min_bytes", "properties", "items", "leaf", "unique_floor")

    def __init__(self) -> None:
        self.unique: list[tuple[int, tuple[str, ...]]] = []  # (maxUniqueItems, selectors)
        self.max_bytes: int | None = None
        self.min_bytes: int | None = None
        self.properties: dict[str, _Node] = {}
        self.items: _Node | None = None
        self.leaf = False  # no locations below: set by prune()
        self.unique_floor = 0  # arrays this long or shorter pass every maxUniqueItems: set by prune()

    def child(self, token: str | None) -> _Node:
        if token is None:
            if self.items is None:
                self.items = _Node()
            return self.items
        return self.properties.setdefault(token, _Node())

    def prune(self) -> bool:
        """Drop branches without keywords; True when this node has none left either."""
        self.properties = {k: v for k, v in self.properties.items() if not v.prune()}
        if self.items is not None and self.items.prune():
            self.items = None
        self.leaf = not self.properties and self.items is None
        self.unique_floor = min((limit for limit, _ in self.unique), default=1 << 62)
        return not (self.unique or self.max_bytes is not None or self.min_bytes is not None
                    or self.properties or self.items)


class AmazonKeywordChecks:
    def __init__(self, schema: dict):
        self._schema = schema
        self._root = _Node()
        self.unchecked: list[str] = []
        self._collect(schema, self._root, "#", frozenset())
        self._root.prune()

    # -- compile ---------------------------------------------------------------------------
    def _collect(self, node: object, at: _Node, where: str, refs: frozenset[str]) -> None:
        if not isinstance(node, dict):
            return
        # Several schemas applying at one location (allOf, $ref): the strictest byte limits hold.
        if isinstance(node.get("maxUniqueItems"), int):
            at.unique.append((node["maxUniqueItems"], tuple(node.get("selectors") or ())))
        if isinstance(node.get("maxUtf8ByteLength"), int):
            limit = node["maxUtf8ByteLength"]
            at.max_bytes = limit if at.max_bytes is None else min(at.max_bytes, limit)
        if isinstance(node.get("minUtf8ByteLength"), int):
            limit = node["minUtf8ByteLength"]
            at.min_bytes = limit if at.min_bytes is None else max(at.min_bytes, limit)
        for name, sub in (node.get("properties") or {}).items():
            self._collect(sub, at.child(name), f"{where}/properties/{name}", refs)
        items = node.get("items")
        if isinstance(items, dict):
            self._collect(items, at.child(None), f"{where}/items", refs)
        for i, sub in enumerate(node.get("allOf") or ()):
            self._collect(sub, at, f"{where}/allOf/{i}", refs)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#") and ref not in refs:
            self._collect(self._resolve(ref), at, ref, refs | {ref})
        for keyword in _BRANCHES:
            if keyword in node:
                self._note_unchecked(node[keyword], f"{where}/{keyword}")

    def _resolve(self, ref: str) -> object:
        target: object = self._schema
        for token in ref[1:].split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict):
                target = target.get(token)
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                return None
        return target

    def _note_unchecked(self, node: object, where: str) -> None:
        if isinstance(node, dict):
            for keyword in KEYWORDS:
                if keyword in node:
                    self.unchecked.append(f"{where}/{keyword}")
            for key, sub in node.items():
                if key != "enum" and key != "const":
                    self._note_unchecked(sub, f"{where}/{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                self._note_unchecked(sub, f"{where}/{i}")

    # -- check -----------------------------------------------------------------------------
    def check(self, attributes: dict) -> list[ValidationIssue]:
        found: list[ValidationIssue] = []
        _walk(self._root, attributes, (), found)
        return found


def _walk(node: _Node, instance: object, tokens: Tokens, found: list[ValidationIssue]) -> None:
    if type(instance) is str:
        # UTF-8 needs 1-4 bytes per character: most strings are decided without encoding them.
        if node.max_bytes is not None and len(instance) * 4 > node.max_bytes:
            _max_utf8_bytes(instance, node.max_bytes, tokens, found)
        if node.min_bytes is not None and len(instance) < node.min_bytes:
            _min_utf8_bytes(instance, node.min_bytes, tokens, found)
    elif type(instance) is list:
        for limit, selectors in node.unique:
            if len(instance) > limit:
                _max_unique_items(instance, limit, selectors, tokens, found)
        if node.items is not None:
            for i, value in enumerate(instance):
                _walk(node.items, value, (*tokens, i), found)
    elif type(instance) is dict and node.properties:
        properties = node.properties
        # Items carry a few of a schema's hundred attributes: iterate the smaller side.
        if len(instance) <= len(properties):
            pairs = ((name, properties.get(name), value) for name, value in instance.items())
        else:
            pairs = ((name, child, instance[name]) for name, child in properties.items() if name in instance)
        for name, child, value in pairs:
            if child is None:
                continue
            # Leaves are decided here, without a call per attribute or value: this walk runs for
            # every item, and almost every leaf passes on its length alone.
            if child.leaf:
                value_type = type(value)
                if value_type is str and (child.max_bytes is None or len(value) * 4 <= child.max_bytes) and (
                        child.min_bytes is None or len(value) >= child.min_bytes):
                    continue
                if value_type is list and len(value) <= child.unique_floor:
                    continue
            _walk(child, value, (*tokens, name), found)


def _max_utf8_bytes(value: str, limit: int, tokens: Tokens, found: list[ValidationIssue]) -> None:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > limit:
        found.append(ValidationIssue(
            "schema.maxUtf8ByteLength",
            f"{location(tokens)} {quote(value)} is {size} bytes in UTF-8 ({len(value)} characters); "
            f"at most {limit} bytes allowed",
            attribute_pointer(tokens),
        ))


def _min_utf8_bytes(value: str, limit: int, tokens: Tokens, found: list[ValidationIssue]) -> None:
    size = len(value.encode("utf-8", "surrogatepass"))
    if size < limit:
        found.append(ValidationIssue(
            "schema.minUtf8ByteLength",
            f"{location(tokens)} {quote(value)} is {size} bytes in UTF-8; at least {limit} bytes required",
            attribute_pointer(tokens),
        ))


def _max_unique_items(value: list, limit: int, selectors: tuple[str, ...], tokens: Tokens,
                      found: list[ValidationIssue]) -> None:
    """At most `limit` items per combination of selector values (whole items without selectors)."""
    groups: dict[tuple, int] = {}
    for item in value:
        key = _selector_key(item, selectors)
        groups[key] = groups.get(key, 0) + 1
    for key, count in groups.items():
        if count > limit:
            found.append(ValidationIssue(
                "schema.maxUniqueItems",
                f"{location(tokens)} has {count} values{_describe(key, selectors)}; at most {limit} allowed",
                attribute_pointer(tokens),
            ))


def _selector_key(item: object, selectors: tuple[str, ...]) -> tuple:
    # Without selectors the whole item is the identity: only repeated identical values count.
    if not selectors or not isinstance(item, dict):
        return (json.dumps(item, sort_keys=True, ensure_ascii=False),)
    return tuple(json.dumps(item.get(s), sort_keys=True, ensure_ascii=False) if s in item else None for s in selectors)


def _describe(key: tuple, selectors: tuple[str, ...]) -> str:
    if not selectors or len(key) != len(selectors):  # items that are not objects are keyed whole
        return " that are the same"
    parts = [f"{name} {quote(json.loads(value))}" if value is not None else f"no {name}"
             for name, value in zip(selectors, key, strict=True)]
    return " for " + ", ".join(parts)
