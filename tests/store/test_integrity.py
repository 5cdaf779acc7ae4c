"""A store that held data and is now missing, empty, replaced, unreadable or damaged
is a fault named in one line: never a first boot with a new key (issue #12, part 2).
Real files, real SQLite, and the real `doorpi` CLI where a person would see it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from doorpi.store import Storage, preflight
from doorpi.store.credentials import card_hash
from doorpi.store.db import DatabaseError
from doorpi.store.secrets import KeyError_

UID = bytes.fromhex("04a1b2c3d4e5f6")


def populated(data_dir: Path) -> None:
    """A gate with a resident, a card and an audit record: data worth keeping."""
    s = Storage.open(data_dir)
    r = s.residents.add("Alice", 1.0e9)
    s.residents.add_card(r.id, card_hash(s.secrets, UID), 1.0e9)
    s.audit.append("admin", {"action": "resident_added"}, ts=1.0e9)
    s.close()


def key_file(data_dir: Path) -> Path:
    return data_dir / "keys" / "device.key"


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cfg = tmp_path / "doorpi.toml"
    if not cfg.exists():
        cfg.write_text(f'[site]\ndata_dir = "{tmp_path / "data"}"\n[keypad]\nkind = "none"\n')
    return subprocess.run(
        [sys.executable, "-m", "doorpi", "--config", str(cfg), *args],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "DOORPI_RUNTIME_DIR": str(tmp_path / "run")},
    )  # fmt: skip


def one_line_no_traceback(p: subprocess.CompletedProcess) -> str:
    text = p.stdout + p.stderr
    assert "Traceback" not in text, text
    return text


def test_first_boot_creates_key_and_later_starts_reuse_it(data_dir):
    populated(data_dir)
    before = key_file(data_dir).read_bytes()
    s = Storage.open(data_dir)
    assert s.residents.by_card_hash(card_hash(s.secrets, UID)) is not None
    s.close()
    assert key_file(data_dir).read_bytes() == before


def test_keys_init_before_first_run_is_still_a_first_boot(data_dir):
    from doorpi.store.secrets import DeviceSecrets

    DeviceSecrets.load_or_create(data_dir / "keys")  # what `doorpi keys init` does
    s = Storage.open(data_dir)
    assert s.residents.all() == []
    s.close()


def test_deleted_key_is_refused_not_replaced(data_dir):
    populated(data_dir)
    key_file(data_dir).unlink()
    with pytest.raises(KeyError_, match=r"device\.key: missing, but .*doorpi\.db holds 1 resident"):
        Storage.open(data_dir)
    assert not key_file(data_dir).exists()  # no new key written behind the admin's back


def test_empty_key_is_refused(data_dir):
    populated(data_dir)
    key_file(data_dir).write_bytes(b"")
    with pytest.raises(KeyError_, match=r"device\.key: device key must be 32 bytes, found 0"):
        Storage.open(data_dir)
    assert key_file(data_dir).read_bytes() == b""


def test_another_gates_key_is_refused(tmp_path):
    populated(tmp_path / "a")
    populated(tmp_path / "b")
    shutil.copy(key_file(tmp_path / "b"), key_file(tmp_path / "a"))
    with pytest.raises(KeyError_, match=r"not the key .*doorpi\.db was written with"):
        Storage.open(tmp_path / "a")


def test_another_gates_database_is_refused(tmp_path):
    populated(tmp_path / "a")
    populated(tmp_path / "b")
    shutil.copy(tmp_path / "b" / "doorpi.db", tmp_path / "a" / "doorpi.db")
    with pytest.raises(KeyError_, match=r"not the key .*doorpi\.db was written with"):
        Storage.open(tmp_path / "a")


def test_database_from_before_key_checks_is_checked_by_its_audit_chain(tmp_path):
    """An upgraded gate has no stored key check yet: the newest audit record decides."""
    populated(tmp_path / "a")
    populated(tmp_path / "b")
    for d in ("a", "b"):
        c = sqlite3.connect(tmp_path / d / "doorpi.db")
        c.execute("DELETE FROM state WHERE key = 'device_key_check'")
        c.commit()
        c.close()
    Storage.open(tmp_path / "a").close()  # its own key: adopted, check written
    shutil.copy(key_file(tmp_path / "a"), key_file(tmp_path / "b"))
    with pytest.raises(KeyError_, match="not the key"):
        Storage.open(tmp_path / "b")


def test_unreadable_key_is_named():
    assert os.geteuid() == 0, "needs root to switch to another user (make test runs as root)"
    import tempfile

    top = Path(tempfile.mkdtemp(prefix="doorpi-unreadable-", dir="/tmp"))
    try:
        data = top / "data"
        populated(data)
        os.chmod(key_file(data), 0)
        for p in (top, data, data / "keys", data / "doorpi.db", *data.glob("doorpi.db-*")):
            os.chown(p, 65534, 65534)
        os.chmod(top, 0o755)
        code = f"from pathlib import Path; from doorpi.store import Storage\nStorage.open(Path({str(data)!r}))"
        p = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-c", code],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert p.returncode != 0
        assert "device.key: cannot read device key: Permission denied" in p.stderr, p.stderr
        assert os.stat(key_file(data)).st_size == 32  # still the old key, untouched
    finally:
        shutil.rmtree(top)


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_lost_database_with_keys_present_is_refused(data_dir, how):
    populated(data_dir)
    db = data_dir / "doorpi.db"
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    if how == "deleted":
        db.unlink()
    else:
        db.write_bytes(b"")
    with pytest.raises(DatabaseError, match=r"doorpi\.db: (missing|empty).*restore doorpi\.db"):
        Storage.open(data_dir)
    assert db.exists() == (how == "emptied")  # nothing recreated


@pytest.mark.parametrize("table", ["audit", "cards", "residents", "state"])
def test_dropped_table_is_named_at_open(data_dir, table):
    populated(data_dir)
    c = sqlite3.connect(data_dir / "doorpi.db")
    c.execute("PRAGMA foreign_keys=OFF")
    c.execute(f"DROP TABLE {table}")
    c.commit()
    c.close()
    with pytest.raises(DatabaseError, match=rf"damaged schema: table {table} is missing"):
        Storage.open(data_dir)


def test_dropped_column_and_trigger_are_named(data_dir):
    populated(data_dir)
    c = sqlite3.connect(data_dir / "doorpi.db")
    c.execute("DROP TRIGGER audit_no_update")
    c.commit()
    c.close()
    s = Storage.open(data_dir)  # a lost safeguard: reported, the audit check still runs
    assert s.schema_lost == [f"{data_dir / 'doorpi.db'}: damaged schema: trigger "
                             "audit_no_update is missing"]  # fmt: skip
    s.close()
    c = sqlite3.connect(data_dir / "doorpi.db")
    c.execute("ALTER TABLE cards DROP COLUMN label")
    c.commit()
    c.close()
    with pytest.raises(DatabaseError, match="table cards has no column label"):
        Storage.open(data_dir)


def test_data_dir_that_is_a_file_is_named(tmp_path):
    f = tmp_path / "data"
    f.write_text("not a folder")
    with pytest.raises(DatabaseError, match=r"site\.data_dir = .*data: is a file, not a folder"):
        Storage.open(f)
    with pytest.raises(DatabaseError, match=r"is inside .*data, which is a file"):
        Storage.open(f / "sub")


def test_preflight_finds_what_open_refuses_and_writes_nothing(data_dir):
    assert preflight(data_dir) == []
    assert list(data_dir.iterdir()) == []
    populated(data_dir)
    assert preflight(data_dir) == []
    key_file(data_dir).unlink()
    before = sorted(p.name for p in data_dir.rglob("*"))
    [line] = preflight(data_dir)
    assert "device.key: missing" in line
    assert sorted(p.name for p in data_dir.rglob("*")) == before


# ------------------------------------------------------------------ the real CLI


def test_cli_run_status_and_config_check_name_a_deleted_key(tmp_path):
    populated(tmp_path / "data")
    key_file(tmp_path / "data").unlink()
    for args in (("run", "--sim"), ("config", "check"), ("resident", "list")):
        p = cli(tmp_path, *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        assert "device.key: missing, but" in one_line_no_traceback(p)
    p = cli(tmp_path, "status")
    assert p.returncode == 2
    text = one_line_no_traceback(p)
    assert "database: FAULT:" in text and "device.key: missing" in text
    assert "database: ok" not in text
    assert not key_file(tmp_path / "data").exists()


def test_cli_names_a_dropped_table_in_status_and_run(tmp_path):
    populated(tmp_path / "data")
    c = sqlite3.connect(tmp_path / "data" / "doorpi.db")
    c.execute("DROP TABLE audit")
    c.commit()
    c.close()
    for args in (("status",), ("run", "--sim"), ("config", "check"), ("log",)):
        p = cli(tmp_path, *args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        text = one_line_no_traceback(p)
        assert "damaged schema: table audit is missing" in text


def test_config_check_catches_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "data").write_text("oops")
    p = cli(tmp_path, "config", "check")
    assert p.returncode == 2
    assert "site.data_dir = " in one_line_no_traceback(p)
    p = cli(tmp_path, "run", "--sim")
    assert p.returncode == 2 and "site.data_dir = " in one_line_no_traceback(p)
    assert "File exists" not in p.stderr
