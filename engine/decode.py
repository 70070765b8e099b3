"""Stage 1: raw records to typed records; anything undecodable becomes a dead letter."""

from __future__ import annotations

import msgspec

from engine.batch import Batch, Raw, dead_letter
from engine.records import STREAMS, Record

_JSON = {name: msgspec.json.Decoder(cls) for name, cls in STREAMS.items()}


def decode(raws: list[Raw]) -> Batch[tuple[Raw, Record]]:
    out: Batch[tuple[Raw, Record]] = Batch(seen=len(raws))
    for raw in raws:
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
        out.items.append((raw, record))
    return out


def path_first(message: str) -> str:
    """msgspec says `Expected int - at `$.amount``; we say `$.amount: expected int`."""
    text, sep, path = message.rpartition(" - at `")
    if not sep:
        return f"{message[0].lower()}{message[1:]}"
    return f"{path.rstrip('`')}: {text[0].lower()}{text[1:]}"
