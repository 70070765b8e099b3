"""Stage 1: raw records to typed records; anything undecodable becomes a dead letter.

Hostile input is bounded here too: an amount above `Limits.max_amount` (or not
a finite number) and a text field longer than `Limits.max_text` are invalid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import msgspec.inspect

from engine.batch import Batch, Raw, dead_letter, input_partition
from engine.records import STREAMS, Record

_JSON = {name: msgspec.json.Decoder(cls) for name, cls in STREAMS.items()}


def _unbounded_texts(cls: type) -> tuple[str, ...]:
    """The text fields the schema itself leaves unbounded (ids have a max length, enums a set)."""
    names = []
    for f in msgspec.inspect.type_info(cls).fields:
        types = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        if any(isinstance(t, msgspec.inspect.StrType) and t.max_length is None and t.pattern is None for t in types):
            names.append(f.name)
    return tuple(names)


_TEXTS = {cls: _unbounded_texts(cls) for cls in STREAMS.values()}


@dataclass(frozen=True)
class Limits:
    max_amount: float = 1e12  # in the event's currency
    max_text: int = 1000  # characters of any one text field

    def check(self, record: Record) -> str | None:
        amount = getattr(record, "amount", None)
        if amount is not None and not (math.isfinite(amount) and amount <= self.max_amount):
            return f"invalid: $.amount: {amount:g} above the limit {self.max_amount:g}"
        for name in _TEXTS[type(record)]:
            value = getattr(record, name)
            if value is not None and len(value) > self.max_text:
                return f"invalid: $.{name}: {len(value)} characters > limit {self.max_text}"
        return None


def decode(raws: list[Raw], limits: Limits = Limits()) -> Batch[tuple[Raw, Record]]:
    out: Batch[tuple[Raw, Record]] = Batch()
    for raw in raws:
        if raw.control == "quiet":  # not a record: a source's word about its partitions
            out.idle.add((raw.stream, input_partition(raw)))
            continue
        if raw.control == "roster":
            out.rosters[raw.stream] = set(msgspec.json.decode(raw.payload))
            continue
        out.seen += 1
        cls = STREAMS.get(raw.stream)
        if raw.reject is not None:
            out.dead.append(dead_letter(raw, raw.reject))
            continue
        if cls is None:
            out.dead.append(dead_letter(raw, f"unknown stream {raw.stream!r}"))
            continue
        try:
            if isinstance(raw.payload, bytes):
                record = _JSON[raw.stream].decode(raw.payload)
            else:
                record = msgspec.convert(raw.payload, cls, strict=not raw.text_values)
        except msgspec.ValidationError as e:
            out.dead.append(dead_letter(raw, f"invalid: {path_first(str(e))}"))
            continue
        except msgspec.DecodeError as e:
            out.dead.append(dead_letter(raw, f"undecodable: {e}"))
            continue
        except UnicodeDecodeError as e:  # msgspec raises it for bad bytes inside a string
            out.dead.append(dead_letter(raw, f"encoding: not UTF-8 ({e.reason} at byte {e.start})"))
            continue
        except RecursionError:
            out.dead.append(dead_letter(raw, "undecodable: nested too deeply"))
            continue
        except Exception as e:  # noqa: BLE001 - no record may stop the flow
            out.dead.append(dead_letter(raw, f"undecodable: {type(e).__name__}: {e}"))
            continue
        reason = limits.check(record)
        if reason is not None:
            out.dead.append(dead_letter(raw, reason))
            continue
        out.items.append((raw, record))
    return out


def path_first(message: str) -> str:
    """msgspec says `Expected int - at `$.amount``; we say `$.amount: expected int`."""
    text, sep, path = message.rpartition(" - at `")
    if not sep:
        return f"{message[0].lower()}{message[1:]}"
    return f"{path.rstrip('`')}: {text[0].lower()}{text[1:]}"
