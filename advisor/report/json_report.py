"""JSON report: the result dict as stable, pretty JSON, and its validation against schema.json.

Key order follows the schema (not the order the engine happened to build the dict in), so two
runs over the same recording give byte-identical files that diff well.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by validate() only: rendering needs no validator
    import jsonschema

TIERS = (("high", 10.0), ("medium", 3.0), ("low", float("-inf")))  # docs/DESIGN.md 'Gain tiers'
#: The engine picks the tier from the exact gain, then publishes it rounded to 2 decimals:
#: 9.996 is published as 10.0 with tier 'medium'. Both tiers around the published value are accepted.
ROUNDING = 0.005


@functools.lru_cache(maxsize=1)
def load_schema() -> dict:
    """schema.json, package data next to this module (a plain path: importlib.resources costs
    `advise analyze` ~15 ms of imports, and the package is never imported from a zip)."""
    text = Path(__file__).with_name("schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def render(result: dict) -> str:
    """Pretty JSON in schema key order, ending with a newline. Refuses NaN/inf (not JSON)."""
    schema = load_schema()
    ordered = _ordered(result, schema, schema)
    return json.dumps(ordered, indent=2, allow_nan=False) + "\n"


def validate(result: dict) -> None:
    """Raise ValueError('$.json.path: what is wrong') for the first violation in document order.

    Checks the schema, then what a schema cannot say: finite numbers, ranks 1..n in list order,
    low <= estimate <= high, tier matching the estimate, each rule reported once.
    """
    import jsonschema

    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(result))
    if errors:
        first = min(errors, key=lambda error: _document_position(result, _error_path(error)))
        raise ValueError(f"{json_path(_error_path(first))}: {_error_message(first)}")
    _check_finite(result, [])
    _check_consistency(result)


def json_path(parts) -> str:
    """['a', 0, 'b'] -> '$.a[0].b'."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():
            text += f".{part}"
        else:
            text += f"[{json.dumps(part)}]"
    return text


def _error_path(error: jsonschema.ValidationError) -> list:
    """The path of the offending value; for a missing or extra key, the path of that key."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [key for key in error.validator_value if key not in error.instance]
        if missing:
            path.append(missing[0])
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        extra = [key for key in error.instance if key not in known]
        if extra:
            path.append(extra[0])
    return path


def _error_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        return "required key is missing"
    if error.validator == "additionalProperties":
        return "key not allowed here"
    return error.message


def _document_position(document, path) -> tuple:
    """Sort key that puts errors in the order their values appear in the document."""
    position, node = [], document
    for part in path:
        if isinstance(node, dict):
            keys = list(node)
            position.append(keys.index(part) if part in node else len(keys))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            position.append(part)
            node = node[part]
        else:
            position.append(0)
            node = None
    return tuple(position)


def _check_finite(value, path: list) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{json_path(path)}: {value} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, path + [key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_finite(item, path + [index])


def _check_consistency(result: dict) -> None:
    profile = result["profile"]
    if profile["busy_samples"] > profile["samples"]:
        raise ValueError("$.profile.busy_samples: more busy samples than samples")
    seen: dict[str, str] = {}
    for index, rec in enumerate(result["recommendations"]):
        where = f"$.recommendations[{index}]"
        if rec["rank"] != index + 1:
            raise ValueError(f"{where}.rank: is {rec['rank']}, expected {index + 1} "
                             f"(ranks follow list order)")
        if not rec["gain_low_pct"] <= rec["estimated_gain_pct"] <= rec["gain_high_pct"]:
            raise ValueError(f"{where}.estimated_gain_pct: not within gain_low_pct..gain_high_pct")
        allowed = {_tier(rec["estimated_gain_pct"] + delta) for delta in (-ROUNDING, ROUNDING)}
        if rec["tier"] not in allowed:
            raise ValueError(f"{where}.tier: is {rec['tier']!r}, the estimate makes it "
                             f"{_tier(rec['estimated_gain_pct'])!r}")
    for section in ("recommendations", "clean", "not_evaluated"):
        for index, entry in enumerate(result[section]):
            where = f"$.{section}[{index}].rule"
            if entry["rule"] in seen:
                raise ValueError(f"{where}: {entry['rule']!r} already reported in {seen[entry['rule']]}")
            seen[entry["rule"]] = section


def _tier(gain_pct: float) -> str:
    return next(tier for tier, floor in TIERS if gain_pct >= floor)


def _ordered(value, schema: dict, root: dict):
    """A copy of `value` whose dict keys follow the schema's 'properties' order (others sorted, last)."""
    schema = _resolve(schema, root)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        keys = [key for key in properties if key in value]
        keys += sorted(key for key in value if key not in properties)
        return {key: _ordered(value[key], properties.get(key, {}), root) for key in keys}
    if isinstance(value, list):
        items = schema.get("items", {})
        return [_ordered(item, items, root) for item in value]
    return value


def _resolve(schema: dict, root: dict) -> dict:
    """Follow local '$ref': '#/$defs/name' references (the only kind schema.json uses)."""
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema
