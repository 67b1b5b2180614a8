"""GS1 product identifiers (GTIN-8/12/13/14: EAN, UPC): length and check digit.

A schema can say "8 to 14 digits"; only arithmetic catches a mistyped digit, and Amazon rejects
such a barcode later (8572 "identifier does not match") after a round trip per item.
"""

from __future__ import annotations

# Digits each identifier type may have. Amazon's `gtin` accepts every GS1 length.
LENGTHS = {"upc": (12,), "ean": (8, 13), "gtin": (8, 12, 13, 14)}


def gs1_check_digit(body: str) -> int:
    """Check digit for the digits before it: weights 3,1,3,... from the right."""
    # Slices and map rather than a generator over enumerate: it runs for every barcode.
    total = 3 * sum(map(int, body[-1::-2])) + sum(map(int, body[-2::-2]))
    return (10 - total % 10) % 10


def identifier_problem(kind: str, value: str) -> tuple[str, str] | None:
    """(code, reason) when `value` is not a valid identifier of `kind`; None when valid or when
    `kind` is not a GS1 type this module knows (ISBN, ASIN...)."""
    lengths = LENGTHS.get(kind.lower())
    if lengths is None:
        return None
    if not value.isascii() or not value.isdigit():
        return "gtin.digits", "must contain digits only"
    if len(value) not in lengths:
        allowed = " or ".join(str(n) for n in lengths)
        return "gtin.length", f"has {len(value)} digits; a {kind.upper()} has {allowed}"
    expected = gs1_check_digit(value[:-1])
    if int(value[-1]) != expected:
        return "gtin.check_digit", f"has check digit {value[-1]}, but its other digits give {expected}"
    return None
