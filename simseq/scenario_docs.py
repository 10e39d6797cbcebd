"""Generate docs/scenario.md, the scenario file reference, from the pydantic models.

    python -m simseq.scenario_docs > docs/scenario.md

Every section, key, type, default, allowed values and bounds come from the
models in ``simseq.scenario``, and each key's description from the docstring
under its field, read here with ``ast`` (pydantic could collect them too, but
at import time, which every command would pay for). A test fails when
docs/scenario.md is out of date.
"""

import ast
import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from simseq import limits, scenario
from simseq.scenario import Domain, Scenario, strip_optional

HEADER = """\
# Scenario file reference

<!-- Generated from simseq/scenario.py by `python -m simseq.scenario_docs > docs/scenario.md`;
     do not edit by hand (tests/unit/test_scenario_docs.py fails when it is out of date). -->

A scenario is a YAML file (`*.yaml` or `*.yml`, UTF-8) that `simseq validate`, `run`,
`calibrate`, `psa`, `dsa` and `sweep` read. Every key is checked: an unknown key, a value of
the wrong type or outside its bounds is an error naming the file, the key path, the value and
what is allowed. Times are in months unless a key says otherwise.

Every number is a [Quantity](#quantity) (or a [Probability](#probability)): it cites an
evidence id from `simseq/data/hcc_evidence.yaml`, pools several, is left to calibration, or is
an explicit `value` with an `assumption` saying why. Explicit values are checked against the
bounds below when the file is read; numbers from evidence, calibration or a sensitivity
analysis where they are used. `.nan`, `.inf` and booleans are never numbers.

`extends: other.yaml` (relative to the file that says it) builds on another scenario file:
mappings merge key by key, `null` deletes a key, anything else replaces. The file extended
must itself look like a scenario (its top-level keys are scenario keys); it is never quoted
in an error message otherwise.
"""


def field_docs(module) -> dict[str, dict[str, str]]:
    """{class name: {field name: docstring}} from the docstring under each annotated field."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text(encoding="utf-8"))
    out: dict[str, dict[str, str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        docs = out.setdefault(cls.name, {})
        body = cls.body
        for stmt, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return out


def module_docs(module) -> dict[str, str]:
    """{constant name: docstring} for the module-level constants documented by a string."""
    tree = ast.parse(Path(inspect.getfile(module)).read_text(encoding="utf-8"))
    out = {}
    for stmt, nxt in zip(tree.body, tree.body[1:], strict=False):
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            out[stmt.targets[0].id] = inspect.cleandoc(nxt.value.value)
    return out


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel)


def _models(t: Any) -> list[type[BaseModel]]:
    """Models an annotation refers to."""
    if _is_model(t):
        return [t]
    return [m for a in get_args(t) for m in _models(a)]


def type_text(t: Any) -> str:
    t = strip_optional(t)
    origin = get_origin(t)
    if _is_model(t):
        return f"[{t.__name__}](#{t.__name__.lower()})"
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in get_args(t))
    if origin is list:
        return f"list of {type_text(get_args(t)[0])}"
    if origin is tuple:
        return "[" + ", ".join(type_text(a) for a in get_args(t)) + "]"
    if origin is dict:
        key, value = get_args(t)
        key_text = "name" if key is str else type_text(key)
        return f"mapping: {key_text} &rarr; {type_text(value)}"
    if t is Any:
        return "any value (checked where it is used)"
    return {int: "integer", float: "number", str: "text", bool: "true or false"}.get(t, str(t))


def bounds_text(info: FieldInfo) -> str:
    parts = []
    for meta in info.metadata:
        if isinstance(meta, Domain):
            parts.append(meta.text() + (f" ({meta.what})" if meta.what else ""))
        elif isinstance(meta, annotated_types.Ge):
            parts.append(f">= {meta.ge:,}")
        elif isinstance(meta, annotated_types.Gt):
            parts.append(f"> {meta.gt:,}")
        elif isinstance(meta, annotated_types.Le):
            parts.append(f"<= {meta.le:,}")
        elif isinstance(meta, annotated_types.Lt):
            parts.append(f"< {meta.lt:,}")
        elif isinstance(meta, annotated_types.MinLen):
            parts.append(f"at least {meta.min_length} entr{'y' if meta.min_length == 1 else 'ies'}")
        elif isinstance(meta, annotated_types.MaxLen):
            parts.append(f"at most {meta.max_length} entries")
        elif getattr(meta, "pattern", None):
            parts.append(f"matches `{meta.pattern}`")
    return "; ".join(parts)


def default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined:
        return ""
    else:
        value = info.default
    if value is None:
        return "&mdash;"
    if isinstance(value, float) and math.isfinite(value):
        return f"`{value:g}`"
    if isinstance(value, BaseModel):
        return "the defaults below"
    return f"`{json.dumps(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _sections() -> list[tuple[type[BaseModel], dict[str, list[str]]]]:
    """Every model reachable from Scenario, breadth first, with the fields of other models
    that hold it: {parent model name: [field names]}."""
    order: list[type[BaseModel]] = [Scenario]
    used_in: dict[type[BaseModel], dict[str, list[str]]] = {Scenario: {}}
    queue: list[type[BaseModel]] = [Scenario]
    while queue:
        model = queue.pop(0)
        for name, info in model.model_fields.items():
            for sub in _models(info.annotation):
                if sub not in used_in:
                    used_in[sub] = {}
                    order.append(sub)
                    queue.append(sub)
                used_in[sub].setdefault(model.__name__, []).append(name)
    return [(m, used_in[m]) for m in order]


def render() -> str:
    """The text of docs/scenario.md."""
    docs = field_docs(scenario)
    out = [HEADER]
    for model, used_in in _sections():
        out.append(f"## {model.__name__}\n")
        if model.__doc__:
            out.append(inspect.cleandoc(model.__doc__) + "\n")
        if used_in:
            where = [
                f"[{parent}](#{parent.lower()}) ({', '.join(f'`{n}`' for n in names)})"
                for parent, names in used_in.items()
            ]
            out.append(f"Used in: {'; '.join(where)}.\n")
        out.append("| key | type | default | allowed | description |")
        out.append("|---|---|---|---|---|")
        if model is Scenario:
            out.append(
                "| `extends` | text | &mdash; | a `*.yaml`/`*.yml` file | Another scenario file "
                "this one builds on (relative to this file). |"
            )
        for name, info in model.model_fields.items():
            row = [
                f"`{name}`",
                type_text(info.annotation),
                default_text(info),
                bounds_text(info),
                docs.get(model.__name__, {}).get(name, ""),
            ]
            out.append("| " + " | ".join(_cell(c) for c in row) + " |")
        out.append("")
    out.append("## Limits\n")
    out.append(
        "Bounds from `simseq/limits.py`, far beyond what a real model needs and short of "
        "what would exhaust memory or run for days.\n"
    )
    out.append("| limit | value | why |")
    out.append("|---|---|---|")
    for name, text in module_docs(limits).items():
        value = getattr(limits, name)
        shown = f"{value:,}" if isinstance(value, int) else f"{value}"
        out.append(f"| `{name}` | {_cell(shown)} | {_cell(text)} |")
    out.append("")
    return "\n".join(out)


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
