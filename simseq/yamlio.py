"""Reading the YAML of scenario and evidence files safely.

One loader for every file simseq reads: a SafeLoader (no Python objects are ever
built) that also rejects duplicate mapping keys, which YAML would otherwise
resolve silently to the last one, and refuses documents whose aliases expand
to an absurd size (a "billion laughs" bomb) or that nest absurdly deep, before
anything walks the expanded values. Every refusal is a ``yaml.MarkedYAMLError``
with the line and column, so callers report it like any other YAML error.
"""

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from simseq.limits import MAX_YAML_DEPTH, MAX_YAML_NODES

__all__ = ["FileProblem", "UniqueKeyLoader", "load_yaml", "read_text_file"]

_MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one.

    Keys brought in by a merge key (``<<: *base``) may be overridden, as YAML
    specifies; two explicit keys that are equal may not.
    """


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    first_line: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG:
            continue
        key = loader.construct_object(key_node)
        try:
            seen = key in first_line
        except TypeError:  # unhashable (a mapping or list as a key)
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found unhashable key",
                key_node.start_mark,
            ) from None
        if seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {_key_text(key)} (first given on line {first_line[key]})",
                key_node.start_mark,
            )
        first_line[key] = key_node.start_mark.line + 1
    loader.flatten_mapping(node)
    return loader.construct_mapping(node)


def _key_text(key: Any) -> str:
    text = repr(key) if isinstance(key, str | int | float | bool) or key is None else "(a key)"
    return text if len(text) <= 60 else text[:57] + "..."


def _checked(constructor, kind: str):
    """A scalar constructor whose ValueError (a 30-digit month, a 5,000-digit integer, ...)
    becomes a located YAML error instead of escaping as a bare ValueError."""

    def construct(loader, node):
        try:
            return constructor(loader, node)
        except (ValueError, OverflowError) as err:
            raise yaml.constructor.ConstructorError(
                None, None, f"invalid {kind}: {err}", node.start_mark
            ) from None

    return construct


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)
for _tag, _kind in (("int", "integer"), ("float", "number"), ("timestamp", "date")):
    _full = f"tag:yaml.org,2002:{_tag}"
    UniqueKeyLoader.add_constructor(
        _full, _checked(yaml.constructor.SafeConstructor.yaml_constructors[_full], _kind)
    )


def _check_size(root: yaml.Node, max_nodes: int, max_depth: int) -> None:
    """Raise unless ``root`` has at most ``max_nodes`` values with aliases expanded, nests at
    most ``max_depth`` deep and has no alias inside its own anchor.

    Sizes are memoised by node identity, so the cost is linear in the distinct nodes of
    the document however large its expansion, and it stops after ``max_nodes`` distinct
    nodes (each adds at least one value to the expansion).
    """

    def too_big(node: yaml.Node) -> yaml.YAMLError:
        return yaml.composer.ComposerError(
            None,
            None,
            f"more than {max_nodes:,} values, counting each alias (*name) as a copy of what "
            "it refers to; a scenario has a few hundred (an 'alias bomb' of aliases that "
            "multiply each other has billions)",
            node.start_mark,
        )

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, list | None]] = [(root, None)]
    while stack:
        node, kids = stack.pop()
        nid = id(node)
        if kids is not None:  # its children are done
            on_path.discard(nid)
            total = 1 + sum(size[id(k)] for k in kids)
            size[nid] = total
            depth[nid] = 1 + max((depth[id(k)] for k in kids), default=0)
            if total > max_nodes:
                raise too_big(node)
            if depth[nid] > max_depth:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {max_depth} levels deep (a scenario nests about 7)",
                    node.start_mark,
                )
            continue
        if nid in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[nid], depth[nid] = 1, 1
            continue
        if len(size) + len(on_path) > max_nodes:
            raise too_big(node)
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        else:
            kids = list(node.value)
        if len(kids) >= max_nodes:
            raise too_big(node)
        on_path.add(nid)
        stack.append((node, kids))
        for kid in kids:
            kid_id = id(kid)
            if isinstance(kid, yaml.ScalarNode):
                size[kid_id], depth[kid_id] = 1, 1
            elif kid_id in on_path:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    "an alias refers to the anchor it is inside of (a recursive structure)",
                    kid.start_mark,
                )
            if kid_id not in size:
                stack.append((kid, None))


def load_yaml(text: str, *, max_nodes: int = MAX_YAML_NODES, max_depth: int = MAX_YAML_DEPTH):
    """Parse one YAML document with ``UniqueKeyLoader``, refusing alias bombs and deep nesting.

    Raises
    ------
    yaml.YAMLError
        For invalid YAML, duplicate keys, unsafe tags, invalid scalars, and documents
        expanding to more than ``max_nodes`` values or nesting deeper than ``max_depth``.
    """
    loader = UniqueKeyLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the pure-Python parser (no libyaml) on deep nesting
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {max_depth} levels deep", None
            ) from None
        if node is None:
            return None
        _check_size(node, max_nodes, max_depth)
        return loader.construct_document(node)
    finally:
        loader.dispose()


class FileProblem(Exception):
    """A file that cannot be read as a YAML text file; ``str()`` says why, without content."""


def read_text_file(path: str | Path, *, max_bytes: int, suffixes: tuple[str, ...]) -> str:
    """The UTF-8 text of a regular file named ``*<suffix>`` of at most ``max_bytes`` bytes.

    Never blocks on a FIFO or device (opened non-blocking, then checked to be a regular
    file) and never reads more than ``max_bytes + 1`` bytes. Problems raise
    ``FileProblem`` with a message that quotes nothing of the file's content.
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise FileProblem(
            f"not a {' or '.join(suffixes)} file (a scenario is a YAML file named *.yaml)"
        )
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise FileProblem(f"cannot read: {err.strerror or err}") from None
    except ValueError:  # a NUL byte in the path
        raise FileProblem("not a valid file path") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileProblem("cannot read: is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem("not a regular file (a FIFO, device or socket is never read)")
        if info.st_size > max_bytes:
            raise FileProblem(_too_big(info.st_size, max_bytes))
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as err:
        raise FileProblem(f"cannot read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if total > max_bytes:
        raise FileProblem(_too_big(total, max_bytes))
    data = b"".join(chunks)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise FileProblem(
            f"not UTF-8 text: byte 0x{data[err.start]:02x} at line {line}, column {column} "
            "cannot be decoded (save the file as UTF-8)"
        ) from None


def _too_big(n_bytes: int, max_bytes: int) -> str:
    return (
        f"file too large: {n_bytes:,} bytes or more; a scenario file may have at most "
        f"{max_bytes:,} bytes (the shipped ones have under 7 KB)"
    )
