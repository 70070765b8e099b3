"""YAML rule files read into plain data plus the source position of every node.

PyYAML's composer keeps marks on nodes; we build the data ourselves from the
node tree so that any later error (schema, field path, condition) can be
reported at `file:line:col`.  Only plain scalars, lists and mappings are
built: no tags, no Python objects. Aliases are allowed, but what they expand
to is bounded (MAX_NODES), so a "billion laughs" file is refused, not built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.rules.errors import Problem, RuleError

Path_ = tuple[str | int, ...]
MAX_NODES = 100_000  # nodes a rule file may expand to, aliases included


class Located:
    """Parsed YAML with positions: `where(path)` gives (line, col) of a node."""

    def __init__(self, file: str, data: Any, marks: dict[Path_, tuple[int, int]]):
        self.file = file
        self.data = data
        self._marks = marks

    def where(self, path: Path_) -> tuple[int, int]:
        # The closest enclosing node that has a mark (always the root at worst).
        while path not in self._marks:
            path = path[:-1]
        return self._marks[path]

    def problem(self, path: Path_, message: str, rule_id: str | None = None) -> Problem:
        line, col = self.where(path)
        return Problem(self.file, line, col, message, rule_id)

    def key_problem(self, path: Path_, message: str, rule_id: str | None = None) -> Problem:
        """A problem with a mapping key (unknown field): point at the key itself."""
        key_path = (*path, "\0key")
        line, col = self._marks.get(key_path) or self.where(path)
        return Problem(self.file, line, col, message, rule_id)


def load(path: Path, display: str | None = None) -> Located:
    name = display or str(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise RuleError([Problem(name, line, col, f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8")]) \
            from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RuleError([Problem(name, line, col, f"invalid YAML: {e.problem or e}")]) from None
    marks: dict[Path_, tuple[int, int]] = {}
    if node is None:
        raise RuleError([Problem(name, 1, 1, "empty file")])
    return Located(name, _build(node, (), marks, name, [0]), marks)


_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][-+]?[0-9]+)?$")


def _scalar(node: yaml.ScalarNode) -> Any:
    value = node.value
    if node.style:  # quoted: always a string
        return value
    if value in ("true", "True"):
        return True
    if value in ("false", "False"):
        return False
    if value in ("null", "~", ""):
        return None
    if _INT.match(value):
        return int(value.replace("_", ""))
    if _FLOAT.match(value):
        return float(value)
    return value


_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")}


def _build(node: yaml.Node, path: Path_, marks: dict, name: str, built: list[int]) -> Any:
    built[0] += 1
    if built[0] > MAX_NODES:
        m = node.start_mark
        raise RuleError([Problem(name, m.line + 1, m.column + 1,
                                 f"the file expands to more than {MAX_NODES:,} nodes (aliases?)")])
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if node.tag not in _PLAIN_TAGS:  # `!!python/...` and friends: rules are data, never code
        m = node.start_mark
        raise RuleError([Problem(name, m.line + 1, m.column + 1, f"YAML tags are not allowed here ({node.tag})")])
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, (*path, i), marks, name, built) for i, child in enumerate(node.value)]
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = str(_scalar(key_node)) if isinstance(key_node, yaml.ScalarNode) else None
        if key is None:
            m = key_node.start_mark
            raise RuleError([Problem(name, m.line + 1, m.column + 1, "mapping keys must be plain values")])
        if key in out:
            m = key_node.start_mark
            raise RuleError([Problem(name, m.line + 1, m.column + 1, f"duplicate key '{key}'")])
        marks[(*path, key, "\0key")] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        out[key] = _build(value_node, (*path, key), marks, name, built)
    return out
