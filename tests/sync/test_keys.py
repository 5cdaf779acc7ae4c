from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from doorpi.sync.keys import GateIdentity, KeyFileError, PublicIdentity, SiteKey, pretty


def test_gate_keys_are_private_files_and_reload(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    gate = GateIdentity.create(keys, "main-gate")
    for name in ("gate-x25519.key", "gate-ed25519.key"):
        mode = stat.S_IMODE((keys / name).stat().st_mode)
        assert mode == 0o600, name
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    again = GateIdentity.load(keys, "main-gate")
    assert again.fingerprint == gate.fingerprint
    assert len(gate.fingerprint) == 32 and int(gate.fingerprint, 16) >= 0


def test_gate_keys_are_never_overwritten(tmp_path: Path) -> None:
    gate = GateIdentity.create(tmp_path, "g")
    with pytest.raises(KeyFileError, match="already exist"):
        GateIdentity.create(tmp_path, "g")
    assert GateIdentity.load(tmp_path).fingerprint == gate.fingerprint


def test_damaged_key_file_is_named(tmp_path: Path) -> None:
    GateIdentity.create(tmp_path, "g")
    (tmp_path / "gate-ed25519.key").write_bytes(b"short")
    with pytest.raises(KeyFileError, match=r"gate-ed25519.key: key must be 32 bytes, found 5"):
        GateIdentity.load(tmp_path)


def test_public_card_round_trip_and_tamper(tmp_path: Path) -> None:
    gate = GateIdentity.create(tmp_path / "k", "car-park")
    text = gate.public.to_json()
    back = PublicIdentity.from_json(text, "gate")
    assert back == gate.public and back.name == "car-park"
    doc = json.loads(text)
    doc["box_key"] = json.loads(SiteKey(os.urandom(32), "x").public.to_json())["box_key"]
    with pytest.raises(KeyFileError, match="fingerprint does not match"):
        PublicIdentity.from_json(json.dumps(doc), "gate")
    with pytest.raises(KeyFileError, match="not a doorpi site public key"):
        PublicIdentity.from_json(text, "site")


def test_site_key_halves_are_distinct_and_stable(tmp_path: Path) -> None:
    site = SiteKey.create(tmp_path, "Court")
    assert stat.S_IMODE((tmp_path / "site.key").stat().st_mode) == 0o600
    again = SiteKey.load(tmp_path, "Court")
    assert again.fingerprint == site.fingerprint
    halves = {bytes(site.signing), bytes(site.box), site.pin_tag_key, site.seed}
    assert len(halves) == 4
    with pytest.raises(KeyFileError, match="already exists"):
        SiteKey.create(tmp_path, "Court")


def test_pretty_fingerprint_groups() -> None:
    assert pretty("0123456789abcdef" * 2) == "0123-4567-89ab-cdef-0123-4567-89ab-cdef"
