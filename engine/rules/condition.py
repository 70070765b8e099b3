"""The `condition` of a rule: selection names joined by and/or/not, parentheses,
and Sigma's quantifiers `1 of sel_*` / `all of sel_*` (`them` = every selection).

Parsed into a small tree of tuples; compiled into one closure by the compiler.
"""

from __future__ import annotations

import difflib
import fnmatch
import re

Node = tuple  # ("sel", name) | ("and", [nodes]) | ("or", [nodes]) | ("not", node)

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([A-Za-z0-9_*]+))")


class ConditionError(ValueError):
    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset  # 0-based column inside the condition text


def parse(text: str, selections: list[str]) -> Node:
    tokens: list[tuple[str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ConditionError(f"unexpected character {text[pos]!r} in condition", pos)
        tokens.append((m.group(m.lastindex), m.start(m.lastindex)))
        pos = m.end()
    parser = _Parser(tokens, selections, len(text))
    node = parser.expr()
    if parser.i < len(tokens):
        word, at = tokens[parser.i]
        raise ConditionError(f"unexpected '{word}' in condition", at)
    return node


class _Parser:
    def __init__(self, tokens: list[tuple[str, int]], selections: list[str], end: int):
        self.tokens, self.selections, self.end, self.i = tokens, selections, end, 0

    def peek(self) -> str | None:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, int]:
        if self.i >= len(self.tokens):
            raise ConditionError("condition ends too early", self.end)
        self.i += 1
        return self.tokens[self.i - 1]

    def expr(self) -> Node:
        parts = [self.conj()]
        while self.peek() == "or":
            self.take()
            parts.append(self.conj())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def conj(self) -> Node:
        parts = [self.neg()]
        while self.peek() == "and":
            self.take()
            parts.append(self.neg())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def neg(self) -> Node:
        if self.peek() == "not":
            self.take()
            return ("not", self.neg())
        return self.atom()

    def atom(self) -> Node:
        word, at = self.take()
        if word == "(":
            node = self.expr()
            closing, at2 = self.take()
            if closing != ")":
                raise ConditionError(f"expected ')' but found '{closing}'", at2)
            return node
        if word in ("1", "any", "all") and self.peek() == "of":
            self.take()
            pattern, at2 = self.take()
            names = self.selections if pattern == "them" else fnmatch.filter(self.selections, pattern)
            if not names:
                raise ConditionError(f"'{pattern}' matches no selection", at2)
            return ("and" if word == "all" else "or", [("sel", n) for n in names])
        if word in ("and", "or", "of", ")"):
            raise ConditionError(f"unexpected '{word}' in condition", at)
        if word not in self.selections:
            hint = difflib.get_close_matches(word, self.selections, n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise ConditionError(f"unknown selection '{word}'{suggestion}", at)
        return ("sel", word)


def names(node: Node) -> set[str]:
    if node[0] == "sel":
        return {node[1]}
    if node[0] == "not":
        return names(node[1])
    return set().union(*(names(n) for n in node[1]))
