"""Daemon settings: one TOML file, every key also settable from the environment.

`FUNDWATCH_<SECTION>__<KEY>` overrides `[section] key`, e.g.
`FUNDWATCH_KAFKA__BOOTSTRAP_SERVERS=kafka1:9092` or `FUNDWATCH_DUCKDB=/data/a.duckdb`.
Environment values are taken as strings and converted to the key's type (a
number, a boolean), so a secret such as a password of digits stays the string
it is. Librdkafka settings go under
`[kafka.client]` (`FUNDWATCH_KAFKA__CLIENT__SASL_MECHANISM=PLAIN`; in the
environment `_` in those keys stands for `.`), so SASL and TLS need no code.

Every struct forbids unknown fields, so a typo is an error that names the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from connectors.errors import InputError
from engine.decode import path_first
from engine.timing import Timing

ENV_PREFIX = "FUNDWATCH_"
ROOT = Path(__file__).resolve().parents[1]

Seconds = Annotated[float, Meta(gt=0)]


class Conf(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Kafka(Conf):
    bootstrap_servers: str
    # passed through to librdkafka as is: security.protocol, sasl.*, ssl.*, ...
    client: dict[str, str | int | float | bool] = {}
    group_id: str = "fundwatch"  # names the consumers in broker tools; offsets live in the recovery store


class Topics(Conf):
    transactions: str = "fundwatch.transactions"
    sensors: str = "fundwatch.sensors"
    # reference data, compacted topics keyed by record id; "" turns one off
    parties: str = "fundwatch.parties"
    accounts: str = "fundwatch.accounts"
    loans: str = "fundwatch.loans"
    relations: str = "fundwatch.relations"
    alerts: str = "fundwatch.alerts"
    dead_letters: str = "fundwatch.dead-letters"

    def streams(self) -> dict[str, str]:
        return {s: t for s, t in (("transactions", self.transactions), ("sensors", self.sensors)) if t}

    def reference(self) -> dict[str, str]:
        kinds = ("parties", "accounts", "loans", "relations")
        return {k: getattr(self, k) for k in kinds if getattr(self, k)}


class Input(Conf):
    batch_size: Annotated[int, Meta(ge=1)] = 5000  # messages per fetch and partition
    max_message_bytes: Annotated[int, Meta(ge=64)] = 1_048_576  # larger: dead letter "oversized"
    # event time (engine.timing), as in a replay: an event older than its partition's newest by more
    # is "late"; stateful rules wait this long for stragglers before they look at an event
    allowed_lateness: Seconds = 600
    future_tolerance: Seconds = 3600  # dated further ahead of the wall clock: "future"
    idle_after: Seconds = 300  # a partition silent this long stops holding its stream's watermark back
    idle_wait: Seconds = 0.005  # pause when a partition has nothing new
    max_amount: Annotated[float, Meta(gt=0)] = 1e12  # larger amounts are invalid (dead letters)
    max_text: Annotated[int, Meta(ge=1)] = 1000  # characters of one text field; longer is invalid


    def timing(self) -> Timing:
        return Timing(timedelta(seconds=self.allowed_lateness), timedelta(seconds=self.future_tolerance),
                      timedelta(seconds=self.idle_after))


class Reference(Conf):
    snapshot: str = ""  # a Parquet directory or a DuckDB file; "" for topics only
    wait_for_topics: Seconds = 30  # at start, read reference topics to their end for at most this long


class Recovery(Conf):
    directory: str = ""  # "" runs without recovery (tests, demos)
    snapshot_interval: Seconds = 1  # also the epoch length: a kill -9 replays about this much reading
    # messages an input partition reads at most between two snapshots: under a backlog,
    # a restart replays at most this many per partition
    snapshot_events: Annotated[int, Meta(ge=1)] = 100_000
    backup_interval: float = 0


class Http(Conf):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 9464  # process i listens on port + i; 0 turns it off


class Api(Conf):
    """The analysts' workbench, served by process 0 (it owns the store)."""

    host: str = "127.0.0.1"  # anything but loopback needs tls_cert and tls_key
    port: Annotated[int, Meta(ge=0, le=65535)] = 9480  # 0 turns it off
    tls_cert: str = ""
    tls_key: str = ""


class Output(Conf):
    delivery_timeout: Seconds = 30  # per delivery attempt; an unconfirmed alert is sent again


class DeadLetters(Conf):
    # what of a dead letter's payload is stored and published: "keep" it (truncated to
    # max_payload characters), "mask" every value but the event's id, time and kinds, or "drop" it
    payload: Literal["keep", "mask", "drop"] = "keep"
    max_payload: Annotated[int, Meta(ge=0)] = 4096


class Settings(Conf):
    kafka: Kafka
    topics: Topics = Topics()
    input: Input = Input()
    reference: Reference = Reference()
    recovery: Recovery = Recovery()
    http: Http = Http()
    api: Api = Api()
    output: Output = Output()
    dead_letters: DeadLetters = DeadLetters()
    duckdb: str = "fundwatch.duckdb"
    rules: str = str(ROOT / "rules" / "post_loan")
    shutdown_timeout: Seconds = 30  # SIGTERM: drain for this long, then exit anyway


class ConfigError(InputError):
    pass


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from a TOML file (optional) overlaid with FUNDWATCH_* variables."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: {e}") from None
    for key, value in sorted((environ if environ is not None else os.environ).items()):
        if key.startswith(ENV_PREFIX) and key not in _CLI_ONLY:
            _put(data, key[len(ENV_PREFIX):].lower().split("__"), value)
    try:
        return msgspec.convert(data, Settings, strict=False)  # "30" from the environment is a number
    except msgspec.ValidationError as e:
        where = f"{path}: " if path else ""
        raise ConfigError(f"{where}{path_first(str(e))}") from None


# read by click options of other commands, not settings of the daemon
_CLI_ONLY = frozenset({"FUNDWATCH_DB", "FUNDWATCH_RULES", "FUNDWATCH_LOG_LEVEL", "FUNDWATCH_CONFIG", "FUNDWATCH_API",
                       "FUNDWATCH_TOKEN", "FUNDWATCH_DB_KEY"})


def _put(data: dict, keys: list[str], value: Any) -> None:
    if keys[:2] == ["kafka", "client"] and len(keys) == 3:
        keys = ["kafka", "client", keys[2].replace("_", ".")]
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{ENV_PREFIX}{'__'.join(keys).upper()}: {k!r} is not a section")
    node[keys[-1]] = value


def kafka_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """Librdkafka settings for one client: bootstrap, the pass-through block, then `extra`."""
    return {"bootstrap.servers": settings.kafka.bootstrap_servers, **settings.kafka.client, **extra}
