"""Daemon settings: TOML plus FUNDWATCH_* overrides; unknown keys are errors that name the key."""

from __future__ import annotations

import pytest

from dataflows.config import ConfigError, kafka_config, load

TOML = """
duckdb = "/data/alerts.duckdb"

[kafka]
bootstrap_servers = "k1:9092,k2:9092"

[kafka.client]
"security.protocol" = "SASL_SSL"
"sasl.mechanism" = "PLAIN"

[topics]
transactions = "bank.tx"
sensors = ""
"""


def write(tmp_path, text=TOML):
    path = tmp_path / "fundwatch.toml"
    path.write_text(text)
    return path


def test_file_and_defaults(tmp_path):
    s = load(write(tmp_path), environ={})
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert s.topics.streams() == {"transactions": "bank.tx"}  # "" turns a stream off
    assert s.topics.reference()["loans"] == "fundwatch.loans"
    assert s.http.host == "127.0.0.1" and s.duckdb == "/data/alerts.duckdb"
    conf = kafka_config(s, **{"group.id": "g"})
    assert conf == {"bootstrap.servers": "k1:9092,k2:9092", "security.protocol": "SASL_SSL",
                    "sasl.mechanism": "PLAIN", "group.id": "g"}


def test_environment_overrides_the_file_and_parses_values(tmp_path):
    env = {
        "FUNDWATCH_KAFKA__BOOTSTRAP_SERVERS": "prod:9093",
        "FUNDWATCH_KAFKA__CLIENT__SASL_USERNAME": "fundwatch",
        "FUNDWATCH_HTTP__PORT": "9500",
        "FUNDWATCH_INPUT__ALLOWED_LATENESS": "3600.5",
        "FUNDWATCH_DUCKDB": "/srv/a.duckdb",
        "FUNDWATCH_LOG_LEVEL": "debug",  # a CLI option, not a daemon setting
        "OTHER": "ignored",
    }
    s = load(write(tmp_path), environ=env)
    assert s.kafka.bootstrap_servers == "prod:9093"
    assert s.kafka.client["sasl.username"] == "fundwatch"
    assert s.http.port == 9500 and s.input.allowed_lateness == 3600.5 and s.duckdb == "/srv/a.duckdb"


def test_environment_alone_is_enough():
    s = load(None, environ={"FUNDWATCH_KAFKA__BOOTSTRAP_SERVERS": "k:9092"})
    assert s.kafka.bootstrap_servers == "k:9092"


@pytest.mark.parametrize("text, env, expected", [
    (TOML + "\n[http]\nprot = 1\n", {}, "$.http: object contains unknown field `prot`"),
    (TOML.replace("duckdb =", "duckbd ="), {}, "object contains unknown field `duckbd`"),
    (TOML, {"FUNDWATCH_RECOVERY__DIRECTORYY": "/x"}, "$.recovery: object contains unknown field `directoryy`"),
    (TOML, {"FUNDWATCH_HTTP__PORT": "http"}, "$.http.port: expected `int`, got `str`"),
    (TOML, {"FUNDWATCH_INPUT__BATCH_SIZE": "0"}, "$.input.batch_size: expected `int` >= 1"),
    ("[kafka]\n", {}, "$.kafka: object missing required field `bootstrap_servers`"),
    ("[kafka\n", {}, "fundwatch.toml: "),
])
def test_a_bad_setting_names_its_key(tmp_path, text, env, expected):
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), environ=env)
    assert expected in str(err.value), str(err.value)


def test_secrets_from_the_environment_stay_strings(tmp_path):
    env = {"FUNDWATCH_KAFKA__CLIENT__SASL_PASSWORD": "1e3", "FUNDWATCH_KAFKA__CLIENT__SSL_KEY_PASSWORD": "007",
           "FUNDWATCH_KAFKA__CLIENT__SASL_USERNAME": "true", "FUNDWATCH_SHUTDOWN_TIMEOUT": "12"}
    s = load(write(tmp_path), environ=env)
    client = kafka_config(s)
    assert client["sasl.password"] == "1e3" and client["ssl.key.password"] == "007"
    assert client["sasl.username"] == "true" and s.shutdown_timeout == 12.0
