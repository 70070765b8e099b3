"""Rule errors that point at the place a rule author has to fix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based
    col: int  # 1-based
    message: str
    rule_id: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.message}" + (f" [{self.rule_id}]" if self.rule_id else "")


class RuleError(Exception):
    """One or more problems in a rule pack; the pack is not loaded."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(map(str, problems)))
