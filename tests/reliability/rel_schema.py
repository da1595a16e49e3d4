"""Hypothesis strategies built from a tool's own inputSchema (JSON Schema, as the SDK publishes it).

`valid_args(schema)` draws argument dicts the schema accepts (sizes kept small so calls stay fast);
`invalid_args(schema)` takes such a dict and breaks it in one way a model might: a wrong type, a number
out of range or not finite, a huge or strange string, a huge list, a null, an extra or a missing field.
Each invalid draw says which argument it broke, so the test can check that the error names it.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

MAX_TEXT = 40  # longest string drawn for a valid argument, unless the schema needs more
MAX_ITEMS = 4  # most list items drawn for a valid argument, unless the schema needs more

# Strings a model (or an attacker steering one) may put in any text argument.
NASTY_STRINGS = [
    "",
    " ",
    "\x00",
    "nul\x00inside",
    "../../../../etc/passwd",
    "/etc/passwd",
    "/dev/zero",
    "/dev/urandom",
    "/proc/self/environ",
    "~/.ssh/id_rsa",
    "C:\\Windows\\win.ini",
    "\\\\server\\share\\x.png",
    "file:///etc/passwd",
    "mllab://outputs/../../etc/passwd",
    "mllab://outputs/images/../../x",
    "data:text/plain;base64,aGVsbG8=",
    "data:image/png;base64,!!!!",
    "data:image/png;base64," + "A" * 300,
    "iVBORw0KGgo" + "A" * 400,
    "http://169.254.169.254/latest/meta-data/",
    "\u202e\u0644\u0639\u0631\u0628\u064a\u0629",
    "\U0001f600" * 50,
    "中文字符 ä ß ﬁ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "\ufeff\u200b\u200d",
    "NaN",
    "Infinity",
    "-inf",
    "1e309",
    "%s%n%x{0}{__class__}",
    "'; DROP TABLE x; --",
    "<script>alert(1)</script>",
    "$(rm -rf ~)",
    "a" * 5000,
]
HUGE_NUMBERS = [10**30, -(10**30), 2**63, -(2**63) - 1, 1e308, -1e308, 5e-324, 2**53 + 1]
NON_FINITE_TEXT = ["NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "1e999"]


def resolve(schema: dict, root: dict) -> dict:
    """Follow a local $ref (#/$defs/Name)."""
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        node: Any = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _types(schema: dict) -> list[str]:
    t = schema.get("type")
    if isinstance(t, list):
        return t
    if t:
        return [t]
    return []


def value_strategy(schema: dict, root: dict) -> st.SearchStrategy:
    """Values the schema accepts (a useful, small subset of them)."""
    schema = resolve(schema, root)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([value_strategy(s, root) for s in schema[key]])
    if "allOf" in schema:
        merged: dict = {}
        for s in schema["allOf"]:
            merged.update(resolve(s, root))
        return value_strategy(merged, root)
    types = _types(schema) or ["string"]
    return st.one_of([_typed_strategy(t, schema, root) for t in types])


def _typed_strategy(t: str, schema: dict, root: dict) -> st.SearchStrategy:
    if t == "null":
        return st.none()
    if t == "boolean":
        return st.booleans()
    if t == "integer":
        lo, hi = _bounds(schema, integer=True)
        # Favour the edges: that is where caps and off-by-one errors live.
        edges = [v for v in (lo, hi, lo + 1 if lo is not None else None) if v is not None]
        inner = st.integers(min_value=lo, max_value=hi)
        return st.one_of(st.sampled_from(edges), inner) if edges else inner
    if t == "number":
        lo, hi = _bounds(schema, integer=False)
        inner = st.floats(
            min_value=lo,
            max_value=hi,
            allow_nan=False,
            allow_infinity=False,
            exclude_min="exclusiveMinimum" in schema,
            exclude_max="exclusiveMaximum" in schema,
        )
        edges = [v for v in (lo, hi) if v is not None and not _excluded(schema, v)]
        return st.one_of(st.sampled_from(edges), inner) if edges else inner
    if t == "string":
        lo = schema.get("minLength", 0)
        hi = min(schema.get("maxLength", MAX_TEXT), max(lo, MAX_TEXT))
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: lo <= len(s) <= hi)
        return st.text(min_size=lo, max_size=hi)
    if t == "array":
        lo = schema.get("minItems", 0)
        hi = min(schema.get("maxItems", MAX_ITEMS), max(lo, MAX_ITEMS))
        items = schema.get("items", {})
        if "prefixItems" in schema:
            return st.tuples(*[value_strategy(s, root) for s in schema["prefixItems"]]).map(list)
        return st.lists(value_strategy(items, root), min_size=lo, max_size=hi)
    if t == "object":
        if "properties" in schema:
            return args_strategy(schema, root)
        return st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)
    return st.nothing()


def _excluded(schema: dict, v: float) -> bool:
    return v in (schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum"))


def _bounds(schema: dict, integer: bool) -> tuple[Any, Any]:
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    if integer:
        if "exclusiveMinimum" in schema and "minimum" not in schema:
            lo = math.floor(lo) + 1
        if "exclusiveMaximum" in schema and "maximum" not in schema:
            hi = math.ceil(hi) - 1
        lo = None if lo is None else math.ceil(lo)
        hi = None if hi is None else math.floor(hi)
        # An unbounded integer argument still gets realistic values (huge ones are the invalid part).
        lo = -(2**31) if lo is None else lo
        hi = 2**31 if hi is None else hi
    else:
        lo = -1e6 if lo is None else lo
        hi = 1e6 if hi is None else hi
    return lo, hi


def args_strategy(
    schema: dict, root: dict | None = None, overrides: dict | None = None
) -> st.SearchStrategy[dict]:
    """A dict with every required property and a random subset of the optional ones."""
    root = root if root is not None else schema
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    overrides = {k: v for k, v in (overrides or {}).items() if k in props}

    def strat(k, v):
        return overrides[k] if k in overrides else value_strategy(v, root)

    return st.fixed_dictionaries(
        {k: strat(k, v) for k, v in props.items() if k in required},
        optional={k: strat(k, v) for k, v in props.items() if k not in required},
    )


def valid_args(schema: dict, overrides: dict | None = None) -> st.SearchStrategy[dict]:
    """Valid arguments; `overrides` maps an argument to a strategy used instead of the schema's."""
    return args_strategy(schema, schema, overrides)


def _wrong_values(prop: dict, root: dict) -> list[Any]:
    """Values of the wrong kind for this property, plus out-of-range and non-finite numbers."""
    prop = resolve(prop, root)
    types = set(_types(prop))
    for key in ("anyOf", "oneOf"):
        for sub in prop.get(key, []):
            types |= set(_types(resolve(sub, root)))
    out: list[Any] = []
    if "string" not in types:
        out += ["a string", "", "12", *NON_FINITE_TEXT]
    if not types & {"integer", "number"}:
        out += [0, -1, 3.5, *HUGE_NUMBERS[:2]]
    else:
        out += HUGE_NUMBERS + NON_FINITE_TEXT + [True, "3"]
        for key, delta in (("maximum", 1), ("minimum", -1), ("exclusiveMaximum", 0), ("exclusiveMinimum", 0)):
            if key in prop:
                out.append(prop[key] + delta)
                out.append(prop[key] + delta * 0.5)
    if "null" not in types:
        out.append(None)
    if "array" not in types:
        out += [[], [1, 2, 3], ["x"] * 3]
    else:
        items = prop.get("items", {})
        out += [[None] * 3, ["x", {}, []], list(range(100_000))]
        if "maxItems" in prop:
            out.append([0.5] * (prop["maxItems"] + 1))
        if resolve(items, root).get("type") == "number":
            out += [[1e308, -1e308], ["NaN", "Infinity"]]
    if "object" not in types:
        out += [{}, {"a": 1}]
    if "boolean" not in types:
        out.append(False)
    if "string" in types:
        out += NASTY_STRINGS + ["x" * 1_000_000]
        if "maxLength" in prop:
            out.append("y" * (prop["maxLength"] + 1))
        if "enum" in prop:
            out += [str(prop["enum"][0]).upper() + "_NOT", str(prop["enum"][0]) + " "]
    for key in ("anyOf", "oneOf"):
        for sub in prop.get(key, []):
            sub = resolve(sub, root)
            if "enum" in sub:
                out.append(str(sub["enum"][0]) + "_not_a_choice")
    return out


@st.composite
def invalid_args(draw, schema: dict, overrides: dict | None = None) -> tuple[dict, str | None, str]:
    """(arguments, the argument that was broken or None, how it was broken)."""
    args = dict(draw(valid_args(schema, overrides)))
    props = schema.get("properties", {})
    required = list(schema.get("required", []))
    kinds = ["extra_field", "unicode_key"]
    if props:
        kinds += ["wrong_value"] * 6
    if required:
        kinds.append("missing_required")
    kind = draw(st.sampled_from(kinds))
    if kind == "extra_field":
        name = draw(st.sampled_from(["unexpected", "__proto__", "x" * 300, "seed2", "path", "output_path"]))
        args[name] = draw(st.sampled_from([1, "../../evil.png", None, [1], {"a": {"b": []}}]))
        return args, None, kind
    if kind == "unicode_key":
        args[draw(st.text(min_size=1, max_size=6))] = draw(st.sampled_from(NASTY_STRINGS))
        return args, None, kind
    if kind == "missing_required":
        name = draw(st.sampled_from(required))
        args.pop(name, None)
        return args, name, kind
    name = draw(st.sampled_from(sorted(props)))
    args[name] = draw(st.sampled_from(_wrong_values(props[name], schema)))
    return args, name, kind


def minimal_args(schema: dict) -> dict:
    """The simplest valid arguments: only what is required, each at a plain value (defaults elsewhere)."""
    out = {}
    for name in schema.get("required", []):
        out[name] = _minimal_value(schema["properties"][name], schema)
    return out


def _minimal_value(prop: dict, root: dict) -> Any:
    prop = resolve(prop, root)
    if "default" in prop:
        return prop["default"]
    if "const" in prop:
        return prop["const"]
    if "enum" in prop:
        return prop["enum"][0]
    if "examples" in prop and prop["examples"]:
        return prop["examples"][0]
    for key in ("anyOf", "oneOf"):
        if key in prop:
            return _minimal_value(prop[key][0], root)
    t = (_types(prop) or ["string"])[0]
    if t == "integer":
        return max(prop.get("minimum", 1), 1) if prop.get("maximum", 1) >= 1 else prop.get("minimum", 0)
    if t == "number":
        return float(prop.get("minimum", 0.0))
    if t == "boolean":
        return False
    if t == "array":
        return [_minimal_value(prop.get("items", {}), root) for _ in range(prop.get("minItems", 0))]
    if t == "object":
        return minimal_args(prop)
    if t == "null":
        return None
    return "x" * max(1, prop.get("minLength", 1))
