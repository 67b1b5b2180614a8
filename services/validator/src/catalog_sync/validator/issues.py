"""What local validation reports: one `ValidationIssue` per problem, in a deterministic order.

`path` is a JSON Pointer into the change event (interfaces.md §3): attribute problems start with
`/attributes/<attribute name>`, problems with the event's own fields name the field (`/seller_id`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Values quoted in messages are cut here: a catalog manager needs to recognise the value, not read 2 KB of it.
QUOTE_LIMIT = 60


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    code: str
    message: str
    path: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "path": self.path}


def pointer(*tokens: str | int) -> str:
    """RFC 6901 JSON Pointer from raw tokens (`~` and `/` escaped)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def attribute_pointer(tokens: Sequence[str | int]) -> str:
    return pointer("attributes", *tokens)


def location(tokens: Sequence[str | int]) -> str:
    """How a catalog manager reads an attribute location: `bullet_point[2].value`."""
    text = ""
    for token in tokens:
        if isinstance(token, int):
            text += f"[{token}]"
        else:
            text += f".{token}" if text else str(token)
    return text or "the attributes"


def quote(value: object) -> str:
    """A value as a catalog manager would recognise it, shortened."""
    if isinstance(value, str):
        text = value if len(value) <= QUOTE_LIMIT else value[: QUOTE_LIMIT - 1] + "…"
        return f"'{text}'"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return format(value, "g") if isinstance(value, float) else str(value)
    if isinstance(value, list):
        return f"a list of {len(value)} value{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "an object"
    return repr(value)


def _pointer_key(path: str) -> tuple:
    # Numeric tokens compare as numbers so /bullet_point/10 follows /bullet_point/2 (ASCII digits
    # only: "²".isdigit() is true, but int() refuses it).
    return tuple((0, int(t), "") if t.isascii() and t.isdigit() else (1, 0, t) for t in path.split("/")[1:])


def finalize(issues: Iterable[ValidationIssue]) -> list[ValidationIssue]:
    """Every issue once (schemas state the same requirement in several conditionals), ordered by
    location in the event, then code, then message."""
    unique = set(issues)
    return sorted(unique, key=lambda i: (_pointer_key(i.path), i.code, i.message))
