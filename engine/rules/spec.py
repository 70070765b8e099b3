"""The rule file format as types: what a rule author may write, nothing more."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from engine.records import Level

RuleId = Annotated[str, Meta(pattern=r"^[A-Z]{2,4}-[0-9]{3}$")]


class Strict(Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every authored structure: a misspelt key is an error, not ignored."""


class AppliesTo(Strict, kw_only=True):
    stream: Literal["transactions", "sensors"]
    where: dict[str, Any] = {}


class Exception_(Strict, kw_only=True):
    """A documented case where the rule must not fire (e.g. a known payee)."""

    name: str
    reason: str
    where: dict[str, Any]


class Output(Strict, kw_only=True):
    summary: str


class Expect(Strict, kw_only=True):
    alerts: Annotated[int, Meta(ge=0)]


class RuleTest(Strict, kw_only=True):
    name: str
    context: dict[str, list[dict[str, Any]]] = {}  # reference records by kind
    events: list[dict[str, Any]]
    expect: Expect


class RuleSpec(Strict, kw_only=True):
    id: RuleId
    title: str
    version: Annotated[int, Meta(ge=1)]
    status: Literal["experimental", "test", "stable", "deprecated"]
    severity: Level
    risk_score: Annotated[int, Meta(ge=0, le=100)]
    kind: Literal["match"] = "match"
    tags: list[str] = []
    owner: str | None = None
    description: str | None = None
    false_positives: list[str] = []
    investigation: str | None = None
    applies_to: AppliesTo
    detection: dict[str, Any]  # named selections plus `condition`
    exceptions: list[Exception_] = []
    output: Output
    tests: list[RuleTest] = []


class PackSpec(Strict, kw_only=True):
    id: str
    version: str
    language: Literal[1] = 1
    description: str | None = None
    lists: list[str] = []  # list files, relative to pack.yaml
    test_context: str | None = None  # reference records shared by the rules' embedded tests


class ListSpec(Strict, kw_only=True):
    description: str | None = None
    items: list[str | int | float]
