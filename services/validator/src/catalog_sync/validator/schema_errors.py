"""jsonschema-rs errors → `ValidationIssue`s a catalog manager can act on.

Code: `schema.<keyword>` (stable: the JSON Schema keyword that failed). Path: a JSON Pointer under
`/attributes`; a missing property is reported at the pointer it should have had. Message: the
attribute location, the offending value and the limit, in plain words.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from jsonschema_rs import ValidationError, ValidationErrorKind

from .issues import ValidationIssue, attribute_pointer, location, quote

# Enum options listed in a message before "and N more": real schemas list 250 countries.
ENUM_LISTED = 12

_JSON_TYPES = {
    str: "text", bool: "true/false", int: "a whole number", float: "a number", list: "a list", dict: "an object",
    type(None): "null",
}
_TYPE_WORDS = {
    "string": "text", "number": "a number", "integer": "a whole number", "boolean": "true or false",
    "array": "a list", "object": "an object", "null": "null",
}


def issues_from_error(error: ValidationError) -> Iterator[ValidationIssue]:
    kind = error.kind
    keyword = kind.name
    tokens: Sequence[str | int] = error.instance_path
    where = location(tokens)
    value = error.instance
    details = kind.as_dict()

    if keyword == "required":
        missing = details["property"]
        inside = f" in {where}" if tokens else ""
        yield ValidationIssue("schema.required", f"'{missing}' is required{inside} but not supplied",
                              attribute_pointer([*tokens, missing]))
        return
    if keyword == "additionalProperties":
        for name in details["unexpected"]:
            if tokens:
                message = f"'{name}' is not allowed in {where}"
            else:
                message = f"'{name}' is not an attribute of this product type"
            yield ValidationIssue("schema.additionalProperties", message, attribute_pointer([*tokens, name]))
        return
    yield ValidationIssue(f"schema.{keyword}", _message(keyword, details, where, value, error), attribute_pointer(tokens))


def _message(keyword: str, details: dict, where: str, value: object, error: ValidationError) -> str:
    shown = quote(value)
    match keyword:
        case "maxLength" if isinstance(value, str):
            return f"{where} {shown} is {len(value)} characters long; at most {details['limit']} allowed"
        case "minLength" if isinstance(value, str):
            return f"{where} {shown} is {len(value)} characters long; at least {details['limit']} required"
        case "maxItems" if isinstance(value, list):
            return f"{where} has {len(value)} values; at most {details['limit']} allowed"
        case "minItems" if isinstance(value, list):
            return f"{where} has {len(value)} values; at least {details['limit']} required"
        case "maximum":
            return f"{where} is {shown}; at most {_number(details['limit'])} allowed"
        case "minimum":
            return f"{where} is {shown}; at least {_number(details['limit'])} required"
        case "exclusiveMaximum":
            return f"{where} is {shown}; must be below {_number(details['limit'])}"
        case "exclusiveMinimum":
            return f"{where} is {shown}; must be above {_number(details['limit'])}"
        case "multipleOf":
            return f"{where} is {shown}; must be a multiple of {_number(details['multiple_of'])}"
        case "enum":
            return f"{where} {shown} is not an allowed value; allowed: {_options(details['options'])}"
        case "const":
            return f"{where} {shown} must be {quote(details['expected_value'])}"
        case "type":
            expected = " or ".join(_TYPE_WORDS.get(t, t) for t in details["types"])
            return f"{where} is {shown} ({_JSON_TYPES.get(type(value), 'a value')}); expected {expected}"
        case "pattern":
            return f"{where} {shown} does not have the required form (pattern {details['pattern']})"
        case "format":
            return f"{where} {shown} is not a valid {details['format']}"
        case "uniqueItems":
            return f"{where} repeats a value; every value must be different"
        case "oneOf" if isinstance(error.kind, ValidationErrorKind.OneOfMultipleValid):
            return f"{where} {shown} matches more than one of the allowed forms; it must match exactly one"
        case "anyOf" | "oneOf" if isinstance(error.kind, ValidationErrorKind.AnyOf | ValidationErrorKind.OneOfNotValid):
            return f"{where} {shown} must be {_alternatives(error.kind.context)}"
        case "contains":
            return f"{where} has no value of the required kind"
        case "not":
            return f"{where} {shown} is not allowed here"
        case "false":
            return f"{where} is not allowed"
    return f"{where}: {error.message}"


def _alternatives(branches: list[list[ValidationError]]) -> str:
    """`oneOf`/`anyOf` with every branch failing: say what each branch wanted."""
    wanted = []
    for errors in branches:
        if not errors:
            continue
        first = errors[0]
        details = first.kind.as_dict()
        match first.kind.name:
            case "format":
                wanted.append(f"a valid {details['format']}")
            case "type":
                wanted.append(" or ".join(_TYPE_WORDS.get(t, t) for t in details["types"]))
            case "enum":
                wanted.append(f"one of {_options(details['options'])}")
            case other:
                wanted.append(f"a value passing '{other}'")
    unique = list(dict.fromkeys(wanted))
    return " or ".join(unique) if unique else "one of the allowed forms"


def _options(options: list) -> str:
    shown = ", ".join(quote(o) for o in options[:ENUM_LISTED])
    more = len(options) - ENUM_LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _number(limit: object) -> str:
    return format(limit, "g") if isinstance(limit, float) else str(limit)
