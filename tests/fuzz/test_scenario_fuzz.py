"""Fuzz the scenario loader: mutated shipped scenarios give a clear error or a valid scenario.

Each example takes a shipped scenario (``scenarios/*.yaml``), applies one to three
mutations (deleted and renamed keys, wrong types, NaN/inf/negative/huge numbers,
bad probabilities, ``extends:`` cycles and bad paths, YAML tags, alias bombs,
huge files, invalid UTF-8, duplicate keys, truncation) and checks:

- ``simseq.commands.validate_file`` returns, or raises a ``ScenarioError`` whose
  every line reads ``<file>: <where>: <message>``, the file one of the example's,
  ``<where>`` a key path, a YAML line/column, "(file)" or "(top level)";
- ``simseq validate`` exits 0 or 2, with no traceback;
- for some accepted examples, ``simseq.commands.run_scenario`` at a few thousand
  patients either succeeds with finite numbers in summary.json or fails with a
  located ``ScenarioError``.

Deterministic (``derandomize=True``): a few hundred examples in the default run,
thousands with ``-m slow``.
"""

import copy
import json
import math
import os
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from simseq.cli import main
from simseq.commands import run_scenario, validate_file
from simseq.limits import MAX_SCENARIO_BYTES
from simseq.scenario import SCENARIO_KEYS, ScenarioError, _read_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = {p.name: p for p in sorted((ROOT / "scenarios").glob("*.yaml"))}
MERGED = {name: _read_yaml(str(path)) for name, path in SHIPPED.items()}
RAW = {name: yaml.safe_load(path.read_text()) for name, path in SHIPPED.items()}

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure prints its example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    -1,
    -1e-9,
    0,
    0.5,
    1.5,
    2,
    1e9,
    1e300,
    -1e300,
    1e-300,
    10**30,
    2**63,
    -(2**63),
]
WRONG_TYPES = ["text", "", True, False, None, [], {}, [1, 2], {"x": 1}, {"value": 1}, "2024-01-01"]
TAGS = [
    "!!python/object/apply:os.system ['echo hi']",
    "!!python/name:os.system",
    "!!binary aGVsbG8=",
    "!custom thing",
    "!!set {a, b}",
    "!!timestamp 2024-01-01",
    "!!float '1e400'",
    "!!int '0x7fffffffffffffffffff'",
    "!!str 12",
    "!!omap [a: 1, b: 2]",
]
EXTENDS = [
    "self",
    "cycle",
    "/dev/zero",
    "/dev/null",
    "/etc/passwd",
    "missing.yaml",
    "subdir",
    "fifo.yaml",
    "secrets.yaml",
    "notes.txt",
    "chain",
    "base_case.yaml",
    "../" * 12 + "etc/hostname",
    "",
]
BOMB = "".join(
    ["bomb0: &b0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"]
    + [f"bomb{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]\n" for i in range(1, 9)]
)
PLACES = re.compile(r"^(\(file\)|\(top level\)|\(model\)|YAML|line \d+, column \d+)$")


def _paths(data, prefix=()):
    """Every key path of a YAML tree (mapping keys and list indexes)."""
    out = []
    if isinstance(data, dict):
        items = data.items()
    elif isinstance(data, list):
        items = enumerate(data)
    else:
        return out
    for key, value in items:
        out.append((*prefix, key))
        out += _paths(value, (*prefix, key))
    return out


def _parent(data, path):
    for key in path[:-1]:
        data = data[key]
    return data


def _renamed(key: str, how: int) -> str:
    if not key:
        return "x"
    return [key[:-1], key + "s", key[1:] + key[0], key.upper(), key.replace("_", "-"), "zz"][how]


@st.composite
def mutated(draw):
    """(scenario name, YAML text or bytes, extends target kind or None, mutation kinds)."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    keep_extends = "extends" in RAW[name] and draw(st.booleans())
    data = copy.deepcopy(RAW[name] if keep_extends else MERGED[name])
    kinds = []
    extends = "base_case.yaml" if keep_extends else None
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                [
                    "delete",
                    "rename",
                    "wrong_type",
                    "number",
                    "scale",
                    "probability",
                    "extends",
                    "text",
                ]
            )
        )
        paths = _paths(data)
        if kind in ("delete", "rename", "wrong_type", "number", "probability") and not paths:
            continue
        if kind == "scale":  # a plausible change: often still a valid scenario
            numeric = [
                p
                for p in paths
                if type(_parent(data, p)[p[-1]]) in (int, float) and str(p[-1]) != "seed"
            ]
            if not numeric:
                continue
            path = draw(st.sampled_from(numeric))
            old = _parent(data, path)[path[-1]]
            factor = draw(st.sampled_from([0.1, 0.5, 0.9, 1.1, 2.0, 10.0]))
            _parent(data, path)[path[-1]] = type(old)(old * factor)
            kinds.append(kind)
            continue
        if kind == "extends":
            extends = draw(st.sampled_from(EXTENDS))
            kinds.append(f"extends:{extends or 'empty'}")
            continue
        if kind == "text":
            kinds.append("text")
            continue
        if kind == "probability":
            probable = [
                p
                for p in paths
                if any(str(k) in ("value", "probabilities", "next_line", "prevalence") for k in p)
                and isinstance(_parent(data, p)[p[-1]], int | float)
            ]
            if not probable:
                continue
            path = draw(st.sampled_from(probable))
            _parent(data, path)[path[-1]] = draw(st.sampled_from([1.5, -0.1, 1.0000001, 2]))
            kinds.append(kind)
            continue
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        key = path[-1]
        if kind == "delete":
            del parent[key]
        elif kind == "rename" and isinstance(parent, dict):
            parent[_renamed(str(key), draw(st.integers(0, 5)))] = parent.pop(key)
        elif kind == "wrong_type":
            parent[key] = copy.deepcopy(draw(st.sampled_from(WRONG_TYPES)))
        elif kind == "number":
            parent[key] = draw(st.sampled_from(NUMBERS))
        kinds.append(kind)
    if extends is not None:
        data = {"extends": extends, **{k: v for k, v in data.items() if k != "extends"}}
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10**6)
    if "text" in kinds:
        how = draw(
            st.sampled_from(
                ["tag", "bomb", "huge", "utf8", "duplicate", "truncate", "byte", "flow_list"]
            )
        )
        kinds[kinds.index("text")] = f"text:{how}"
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        if how == "tag":
            value_lines = [i for i, line in enumerate(lines) if re.search(r": \S", line)]
            if value_lines:
                i = draw(st.sampled_from(value_lines))
                head = lines[i].split(": ", 1)[0]
                lines[i] = f"{head}: {draw(st.sampled_from(TAGS))}\n"
            text = "".join(lines)
        elif how == "bomb":
            text += BOMB
        elif how == "huge":
            text += "# padding\n" * (MAX_SCENARIO_BYTES // 10 + 1)
        elif how == "flow_list":
            text += "landmark_list: [" + ", ".join(["1"] * 110_000) + "]\n"
        elif how == "utf8":
            return (
                name,
                text.encode()[: at * 7] + b"\xff\xfe" + text.encode()[at * 7 :],
                extends,
                kinds,
            )
        elif how == "duplicate":
            if lines:
                lines.insert(at + 1, lines[at])
            text = "".join(lines)
        elif how == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif how == "byte":
            pos = draw(st.integers(0, len(text)))
            text = (
                text[:pos]
                + draw(st.sampled_from(["\t", "\x00", "{", "]", ":", "&", "*x", "\ufeff"]))
                + text[pos:]
            )
    return name, text, extends, kinds


def _write_example(directory: Path, name: str, text, extends: str | None) -> Path:
    """The example's file, with the files its extends: target needs next to it."""
    for parent in ("base_case.yaml",):
        (directory / parent).write_bytes(SHIPPED[parent].read_bytes())
    path = directory / f"fuzz_{name}"
    if extends == "self":
        text = _replace_extends(text, path.name)
    elif extends == "cycle":
        text = _replace_extends(text, "other.yaml")
        (directory / "other.yaml").write_text(f"extends: {path.name}\nname: other\n")
    elif extends == "subdir":
        (directory / "subdir.yaml").mkdir()
        text = _replace_extends(text, "subdir.yaml")
    elif extends == "fifo.yaml" and hasattr(os, "mkfifo"):
        os.mkfifo(directory / "fifo.yaml")
    elif extends == "secrets.yaml":
        (directory / "secrets.yaml").write_text("api_token: sk-fuzz-secret\n")
    elif extends == "notes.txt":
        (directory / "notes.txt").write_text("name: notes\n")
    elif extends == "chain":
        text = _replace_extends(text, "chain0.yaml")
        for i in range(40):
            (directory / f"chain{i}.yaml").write_text(f"extends: chain{i + 1}.yaml\n")
        (directory / "chain40.yaml").write_bytes(SHIPPED["base_case.yaml"].read_bytes())
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def _replace_extends(text, target: str):
    if isinstance(text, bytes):
        return text
    return re.sub(r"^extends: .*$", f"extends: {target}", text, count=1, flags=re.M)


def _check_error(err: ScenarioError, directory: Path) -> None:
    """Every line names a file of the example and a location, and quotes no secret."""
    text = str(err)
    assert text, "empty message"
    assert "sk-fuzz-secret" not in text and "api_token" not in text
    for line in text.splitlines():
        file, _, rest = line.partition(": ")
        assert Path(file).resolve().parent == directory.resolve(), line
        where, sep, message = rest.partition(": ")
        if where.startswith("... and "):
            continue
        assert sep and message.strip(), line
        # a place in the file, or a key path from a scenario key (or an unknown key's path)
        top = where.split(".")[0]
        assert PLACES.match(where) or top in SCENARIO_KEYS or "unknown key" in message, line


def _validate(directory: Path, name: str, text, extends) -> str:
    path = _write_example(directory, name, text, extends)
    try:
        validate_file(path)
        outcome = "valid"
    except ScenarioError as err:
        _check_error(err, directory)
        outcome = "error"
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code == (0 if outcome == "valid" else 2), result.output
    return outcome


def _fuzz_validate(example) -> None:
    name, text, extends, kinds = example
    with tempfile.TemporaryDirectory() as tmp:
        outcome = _validate(Path(tmp), name, text, extends)
    event(f"outcome: {outcome}")
    for kind in kinds:
        event(f"mutation: {kind.split(':')[0]}")


@settings(FUZZ, max_examples=300)
@given(mutated())
def test_mutated_scenarios_give_a_clear_error_or_a_valid_scenario(example):
    _fuzz_validate(example)


@pytest.mark.slow
@settings(FUZZ, max_examples=3000)
@given(mutated())
def test_mutated_scenarios_many(example):
    _fuzz_validate(example)


# --------------------------------------------------------------------------- #
# Accepted examples, run end to end at a few thousand patients
# --------------------------------------------------------------------------- #


def _small(data) -> None:
    """A few thousand patients for the run and for calibration."""
    if isinstance(data.get("simulation"), dict):
        data["simulation"]["n_patients"] = 3000
    if isinstance(data.get("calibration"), dict):
        data["calibration"]["n_patients"] = 3000


def _finite(value, where="summary") -> None:
    if isinstance(value, float):
        assert math.isfinite(value), where
    elif isinstance(value, dict):
        for k, v in value.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _finite(v, f"{where}.{i}")


@st.composite
def accepted_numbers(draw):
    """A shipped scenario with one to three numbers changed (often to something still valid)."""
    name = draw(st.sampled_from(sorted(SHIPPED)))
    data = copy.deepcopy(MERGED[name])
    numeric = [p for p in _paths(data) if isinstance(_parent(data, p)[p[-1]], int | float)]
    numeric = [p for p in numeric if not isinstance(_parent(data, p)[p[-1]], bool)]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(numeric))
        old = _parent(data, path)[path[-1]]
        factor = draw(st.sampled_from([0.0, 0.01, 0.5, 0.9, 1.1, 2.0, 10.0, 100.0, -1.0]))
        _parent(data, path)[path[-1]] = type(old)(old * factor)
    _small(data)
    return name, data


def _fuzz_run(example) -> None:
    name, data = example
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        path = directory / f"run_{name}"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        try:
            validate_file(path)
        except ScenarioError as err:
            _check_error(err, directory)
            event("run: refused by validate")
            return
        try:
            summary, out = run_scenario(path, out=directory / "out", quiet=True, threads=1)
        except ScenarioError as err:
            _check_error(err, directory)
            event("run: located error")
            return
        _finite(json.loads((out / "summary.json").read_text()))
        event("run: ok")


@settings(FUZZ, max_examples=12)
@given(accepted_numbers())
def test_accepted_scenarios_run_or_fail_clearly(example):
    _fuzz_run(example)


@pytest.mark.slow
@settings(FUZZ, max_examples=150)
@given(accepted_numbers())
def test_accepted_scenarios_run_many(example):
    _fuzz_run(example)
