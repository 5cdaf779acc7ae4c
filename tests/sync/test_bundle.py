from __future__ import annotations

import json
import os
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from doorpi.sync.bundle import (
    HEADER,
    MAX_BUNDLE_BYTES,
    BundleError,
    open_bundle,
    parse_body,
    read_stable,
    seal_bundle,
)
from doorpi.sync.keys import GateIdentity, SiteKey
from sync.helpers import GateRig, resident, template


def _code(fn: Any) -> tuple[str, str]:
    with pytest.raises(BundleError) as info:
        fn()
    return info.value.code, str(info.value)


def test_round_trip(rig: GateRig, site: SiteKey) -> None:
    b = rig.bundle(5, [resident("a-1", 1, site), resident("b-2", 2, site, pin=None)],
                   tombstones=("gone-1",))  # fmt: skip
    data = rig.seal(b)
    got = open_bundle(data, rig.identity, site.public)
    assert got == b
    assert b"Resident 1" not in data and b"04000000000001" not in data  # sealed


def test_bundle_for_another_gate_is_refused(rig: GateRig, site: SiteKey, tmp_path: Path) -> None:
    other = GateIdentity.create(tmp_path / "other", "car-park")
    b = replace(rig.bundle(1, [resident("a-1", 1, site)]), gate=other.fingerprint)
    data = seal_bundle(b, site, other.public)
    code, msg = _code(lambda: open_bundle(data, rig.identity, site.public))
    assert code == "wrong_gate" and msg.startswith(f"addressed to gate {other.fingerprint[:12]}")
    # Rewriting the header to our fingerprint does not help: it is not sealed to us.
    forged = data[:10] + bytes.fromhex(rig.identity.fingerprint) + data[26:]
    assert _code(lambda: open_bundle(forged, rig.identity, site.public))[0] == "undecryptable"


def test_resealed_by_another_gate_is_refused(rig: GateRig, site: SiteKey, tmp_path: Path) -> None:
    """A gate that opened its own bundle cannot pass it on to a second gate."""
    other = GateIdentity.create(tmp_path / "other", "car-park")
    b = rig.bundle(1, [resident("a-1", 1, site)])  # signed for rig's gate
    signed = site.signing.sign(b.to_body())
    from nacl.public import SealedBox

    sealed = SealedBox(other.public.box).encrypt(bytes(signed))
    data = HEADER.pack(b"DOORPI-B", 1, bytes.fromhex(other.fingerprint), len(sealed)) + sealed
    code, msg = _code(lambda: open_bundle(data, other, site.public))
    assert code == "wrong_gate" and msg.startswith("signed for gate")


def test_wrong_signature(rig: GateRig, site: SiteKey) -> None:
    intruder = SiteKey(os.urandom(32), "Test Court")
    b = replace(rig.bundle(1, [resident("a-1", 1, site)]), site=intruder.fingerprint)
    data = seal_bundle(b, intruder, rig.identity.public)
    code, msg = _code(lambda: open_bundle(data, rig.identity, site.public))
    assert code == "bad_signature"
    assert msg == f"signature does not match the trusted site key {site.fingerprint[:12]}"


@pytest.mark.parametrize("cut", [0, 3, 8, 20, 29, 30, 100, -1])
def test_truncated(rig: GateRig, site: SiteKey, cut: int) -> None:
    data = rig.seal(rig.bundle(1, [resident("a-1", 1, site)]))
    part = data[:cut] if cut >= 0 else data[:-1]
    code, msg = _code(lambda: open_bundle(part, rig.identity, site.public))
    assert code == "truncated", msg
    assert "\n" not in msg


def test_unknown_version_bad_magic_and_trailing_bytes(rig: GateRig, site: SiteKey) -> None:
    data = rig.seal(rig.bundle(1, [resident("a-1", 1, site)]))
    v2 = data[:8] + struct.pack(">H", 2) + data[10:]
    assert _code(lambda: open_bundle(v2, rig.identity, site.public)) == (
        "unknown_version", "format version 2 is not supported (this gate reads 1)")  # fmt: skip
    assert _code(lambda: open_bundle(b"PK\x03\x04" + data[4:], rig.identity, site.public))[0] == (
        "bad_magic"
    )
    assert _code(lambda: open_bundle(data + b"x", rig.identity, site.public)) == (
        "malformed", "1 unexpected bytes after the sealed payload")  # fmt: skip


def test_oversized(tmp_path: Path, rig: GateRig, site: SiteKey) -> None:
    big = tmp_path / "big.bundle"
    with open(big, "wb") as f:
        f.truncate(MAX_BUNDLE_BYTES + 1)
    code, msg = _code(lambda: read_stable(big))
    assert code == "too_large" and "over the 32 MiB limit" in msg
    code, _ = _code(lambda: open_bundle(b"DOORPI-B" + bytes(MAX_BUNDLE_BYTES), rig.identity,
                                        site.public))  # fmt: skip
    assert code == "too_large"


def test_file_changing_while_read_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "x.bundle"
    p.write_bytes(os.urandom(3 << 20))

    def grow() -> None:
        with open(p, "ab") as f:
            f.write(b"more")

    code, msg = _code(lambda: read_stable(p, _after_chunk=grow))
    assert code == "changed_while_read"
    assert msg == f"{p}: file changed while it was being read"
    assert len(read_stable(p)) == p.stat().st_size  # a quiet file reads fine


def test_missing_file_and_directory(tmp_path: Path) -> None:
    assert _code(lambda: read_stable(tmp_path / "nope"))[0] == "not_found"
    assert _code(lambda: read_stable(tmp_path))[0] == "unreadable"


def _body(rig: GateRig, site: SiteKey) -> dict[str, Any]:
    b = rig.bundle(3, [resident("a-1", 1, site), resident("b-2", 2, site)])
    return json.loads(b.to_body())


MALFORMED = [
    (lambda d: d.update(format="zip"), 'format: must be "doorpi-bundle"'),
    (lambda d: d.update(version=9), "body version 9 is not supported (this gate reads 1)"),
    (lambda d: d.update(sequence=0), "sequence: must be a whole number from 1"),
    (lambda d: d.update(sequence="7"), "sequence: must be a whole number from 1"),
    (lambda d: d.update(sequence=True), "sequence: must be a whole number from 1"),
    (lambda d: d.pop("created"), "created: is missing"),
    (lambda d: d.update(residents={}), "residents: must be a list"),
    (lambda d: d["residents"][1].update(keypad_id="12a"), "residents[1].keypad_id: must be 1 to 8 digits"),
    (lambda d: d["residents"][1].update(keypad_id="123456789"), "residents[1].keypad_id: must be 1 to 8 digits 0-9"),
    (lambda d: d["residents"][0].update(name="  "), "residents[0].name: must not be empty"),
    (lambda d: d["residents"][0].update(name="a\nb"), "residents[0].name: contains U+000A LINE FEED"),
    (lambda d: d["residents"][0].pop("active"), "residents[0].active: is missing"),
    (lambda d: d["residents"][0].update(active=1), "residents[0].active: must be true or false"),
    (lambda d: d["residents"][0].update(key="Alice Wang"), "residents[0].key: must be a roster key"),
    (lambda d: d["residents"][0].update(valid_from=2e9, valid_until=1e9), "residents[0].valid_until: must be after valid_from"),
    (lambda d: d["residents"][0].update(valid_until="2027-06-30"), "residents[0].valid_until: must be seconds since the epoch or null"),
    (lambda d: d["residents"][0].update(pin="12ab"), "residents[0].pin: a PIN has digits 0-9 only"),
    (lambda d: d["residents"][0].update(pin_tag=None), "residents[0].pin_tag: must be given exactly when pin is"),
    (lambda d: d["residents"][0]["cards"][0].update(uid="04AABB"), "residents[0].cards[0].uid: must be a card UID"),
    (lambda d: d["residents"][0]["cards"][0].update(uid="08c0ffee"), "residents[0].cards[0].uid: 08c0ffee is a random ID (ISO/IEC 14443-3)"),
    (lambda d: d["residents"][0].update(cards=[{"uid": "04aabbcc"}] * 9), "residents[0].cards: has 9 entries, the limit is 8"),
    (lambda d: d["residents"][1].update(key="a-1"), "residents[1].key: a-1 appears twice (also residents[0])"),
    (lambda d: d["residents"][1].update(keypad_id="101"), "residents[1].keypad_id: 101 is also given to a-1"),
    (lambda d: d["residents"][1].update(cards=d["residents"][0]["cards"]), "residents[1].cards[0]: card is also given to a-1"),
    (lambda d: d.update(tombstones=["a-1"]), "tombstones[0]: a-1 is both deleted and listed as a resident"),
    (lambda d: d.update(tombstones=[7]), "tombstones[0]: must be a roster key"),
    (lambda d: d.update(site="xyz"), "site: must be a fingerprint (32 hex digits)"),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "message"), MALFORMED)
def test_malformed_fields_name_the_field(
    rig: GateRig, site: SiteKey, mutate: Any, message: str
) -> None:
    doc = _body(rig, site)
    mutate(doc)
    body = json.dumps(doc).encode()
    with pytest.raises(BundleError) as info:
        parse_body(body)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_not_json_and_not_utf8() -> None:
    for body in (b"\xff\xfe", b"{", b"[1, 2]", b"9" * 5000):
        with pytest.raises(BundleError) as info:
            parse_body(body)
        assert info.value.code == "malformed"


def test_template_needs_consent_of_the_resident(rig: GateRig, site: SiteKey) -> None:
    ok = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=True)],
                    templates=(template("a-1", rig.peer, rig.identity),))  # fmt: skip
    assert parse_body(ok.to_body()) == ok
    for entry_flag, resident_flag in ((False, True), (True, False), (False, False)):
        b = rig.bundle(1, [resident("a-1", 1, site, share_with_site_gates=resident_flag)],
                       templates=(template("a-1", rig.peer, rig.identity, entry_flag),))  # fmt: skip
        code, msg = _code(lambda b=b: parse_body(b.to_body()))
        assert code == "no_consent"
        assert msg == ("templates[0]: a-1 has not consented to sharing face data between gates "
                       "(share_with_site_gates)")  # fmt: skip
