"""A bank's own export, by a mapping, becomes fundwatch's records: the example
export (other column names, codes, local time, amounts in fen) round-trips to
the simulated bank it was made from; rows that do not map are dead letters with
the reason and the row; a broken mapping is reported at file:line:col, a
missing column or export in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from connectors.alert_store import AlertStore
from connectors.errors import InputError
from connectors.files import FileSource, stream_files
from connectors.imports import import_exports
from connectors.mapping import MappingError, load_mapping
from connectors.simbank import simulate, simulate_frames
from dataflows import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bank_export"
BROKEN_ROW = "TX000000100"  # examples/bank_export/make_export.py gives it channel code 99


def fundwatch(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataflows", "--log-level", "warning", *args], cwd=cwd,
                          capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported")
    import_exports(load_mapping(EXAMPLE / "mapping.yaml"), EXAMPLE, out)
    return out


def test_the_example_export_round_trips_to_the_bank_it_came_from(imported):
    original = simulate_frames(5, 6, 60)
    for kind in ("transactions", "accounts", "parties", "loans", "relations"):
        got = pl.read_parquet(imported / f"{kind}.parquet")
        want = original[kind].filter(pl.col("id") != BROKEN_ROW)
        if kind == "transactions":  # the export has whole seconds
            want = want.with_columns(pl.col("ts").dt.truncate("1s"))
        assert got.height == want.height, kind
        got = got.sort("id").select(want.columns)
        assert got.cast(want.schema).equals(want.sort("id")), kind


def test_a_row_that_does_not_map_is_a_dead_letter_with_its_row(imported):
    (dead,) = pl.read_parquet(imported / "dead_letters.parquet").to_dicts()
    assert dead["source"].endswith("txn_2026-01.csv") and dead["position"] == "row 101"
    assert dead["reason"] == "unmapped: $.channel: TXN_CHNL '99' is not in the mapping's values"
    assert f'"JNL_NO":"{BROKEN_ROW}"' in dead["payload"] and '"TXN_CHNL":"99"' in dead["payload"]


def test_rows_with_bad_values_become_dead_letters_with_reasons(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text((EXAMPLE / "mapping.yaml").read_text())
    for name in ("accounts.csv", "customers.csv", "loans.csv", "relations.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    lines = (EXAMPLE / "txn_2026-02.csv").read_text().splitlines()
    header, good = lines[0], lines[1].split(",")

    def row(**change: str) -> str:
        cells = dict(zip(header.split(","), good))
        return ",".join({**cells, **change}.values())

    (tmp_path / "TXN_2026-02.CSV").write_text("\n".join([
        header, lines[1],
        row(JNL_NO="A", TXN_AMT_FEN="12.5"), row(JNL_NO="B", TXN_TM="256000"), row(JNL_NO="C", PAY_ACCT_NO=""),
        row(JNL_NO="D", TXN_AMT_FEN="-100"), row(JNL_NO="E", CCY="999"),
    ]) + "\n")
    summary = import_exports(load_mapping(mapping), tmp_path, tmp_path / "out")
    assert summary["exports"]["transactions"]["imported"] == 1
    reasons = {d["position"]: d["reason"] for d in pl.read_parquet(tmp_path / "out" / "dead_letters.parquet").to_dicts()}
    assert reasons == {
        "row 2": "unmapped: $.amount: TXN_AMT_FEN '12.5' is not a whole number of fen",
        "row 3": f"unmapped: $.ts: TXN_DT+TXN_TM '{good[1]} 256000' does not fit the format '%Y%m%d %H%M%S' in "
                 "Asia/Shanghai",
        "row 4": "unmapped: $.from_account: PAY_ACCT_NO '' is empty",
        "row 5": "invalid: $.amount: expected `float` >= 0.0",
        "row 6": "unmapped: $.currency: CCY '999' is not in the mapping's values",
    }


BROKEN = """\
version: 1
timezone: Asia/Shanghia
exports:
  transactions:
    fields:
      id: JNL_NO
      ts: {column: TXN_DT, format: "%Q"}
      from_account: PAY_ACCT_NO
      to_account: RCV_ACCT_NO
      amout: {column: TXN_AMT_FEN, unit: fen}
      channel: {column: TXN_CHNL, values: {"01": tranfer}}
  acounts:
    fields: {}
"""


def test_a_broken_mapping_is_reported_at_file_line_col(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text(BROKEN)
    with pytest.raises(MappingError) as e:
        load_mapping(path)
    got = [str(p).replace(str(path), "m") for p in e.value.problems]
    assert got == [
        "m:2:11: unknown time zone 'Asia/Shanghia' (an IANA name such as Asia/Shanghai)",
        "m:7:36: the format '%Q' cannot read back what it writes (strptime directives such as %Y-%m-%d %H:%M:%S)",
        "m:10:7: unknown field 'amout' in Transaction (did you mean 'amount'?)",
        "m:11:50: 'tranfer' is not a channel (did you mean 'transfer'?); one of bill, card, cash, disbursement, "
        "repayment, transfer",
        "m:5:5: missing field 'amount' (every Transaction needs it)",
        "m:12:3: unknown export 'acounts' (did you mean 'accounts'?); exports are transactions, sensors, relations, "
        "parties, accounts, loans",
    ]
    run = fundwatch("import", "--mapping", str(path), "--out", str(tmp_path / "out"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"Error: {path}:2:11: unknown time zone")


def test_event_files_are_found_in_any_case_and_a_folder_without_says_what_it_expects(tmp_path):
    for name in ("txn_2026-01.csv", "Transactions.CSV", "SENSORS-2.ndjson", "notes.csv", "labels.parquet"):
        (tmp_path / name).write_text("id\n")
    assert sorted((s, p.name) for s, p in stream_files(tmp_path)) == [
        ("sensors", "SENSORS-2.ndjson"), ("transactions", "Transactions.CSV"), ("transactions", "txn_2026-01.csv")]
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.csv").write_text("id\n")
    with pytest.raises(InputError, match="no event files; expected a name starting with 'transactions'"):
        stream_files(empty)
    run = fundwatch("import", "--mapping", str(EXAMPLE / "mapping.yaml"), "--data", str(empty), "--out",
                    str(tmp_path / "out"))
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"{empty}: no transactions export; " in run.stderr and "'txn_*.csv' (any case)" in run.stderr


def test_a_column_the_file_lacks_is_named_with_the_mappings_place(tmp_path):
    for name in ("accounts.csv", "customers.csv", "loans.csv", "relations.csv"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    text = (EXAMPLE / "txn_2026-03.csv").read_text().replace("TXN_AMT_FEN", "TXN_AMOUNT_FEN")
    (tmp_path / "txn_2026-03.csv").write_text(text)
    with pytest.raises(InputError) as e:
        import_exports(load_mapping(EXAMPLE / "mapping.yaml"), tmp_path, tmp_path / "out")
    assert str(e.value) == (f"{tmp_path / 'txn_2026-03.csv'}: no column 'TXN_AMT_FEN', which "
                            f"{EXAMPLE / 'mapping.yaml'}:13:24 maps to 'amount' (did you mean 'TXN_AMOUNT_FEN'?)")


def test_replay_with_the_mapping_finds_the_alerts_of_the_bank_it_came_from(tmp_path):
    bank = tmp_path / "bank"
    simulate(5, 6, 60, bank)
    (bank / "sensors.parquet").unlink()  # a core system's export has no sensor readings
    app.run_flow(FileSource(stream_files(bank)), bank, tmp_path / "a.duckdb")
    run = fundwatch("replay", "--mapping", str(EXAMPLE / "mapping.yaml"), "--data", str(EXAMPLE), "--db",
                    str(tmp_path / "b.duckdb"))
    assert run.returncode == 0, run.stderr
    assert "import: 1 row(s) did not map" in run.stdout
    with AlertStore(tmp_path / "a.duckdb") as a, AlertStore(tmp_path / "b.duckdb") as b:
        want = {x["id"] for x in a.alerts() if BROKEN_ROW not in x["evidence"]}
        assert {x["id"] for x in b.alerts()} == want and want
        (dead,) = b.dead_letters()
        assert dead["position"] == "row 101" and dead["reason"].startswith("unmapped: $.channel")
