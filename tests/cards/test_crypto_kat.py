"""Known-answer tests: RFC 4493 CMAC, NXP AN10922 diversification, NXP AN12196.

AN12196 values: Table 14 (AuthenticateEV2First, key 0 all zero), Table 7
(GetFileSettings in CommMode.MAC) and the SUN example of sect. 3.
"""

from __future__ import annotations

import pytest

from doorpi.cards import crypto
from doorpi.cards.ev2 import authenticate_ev2_first
from doorpi.cards.uid import CardProtocolError

h = bytes.fromhex
K0 = bytes(16)

RFC4493_KEY = h("2b7e151628aed2a6abf7158809cf4f3c")
RFC4493_MSG = h(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)


@pytest.mark.parametrize(
    ("length", "mac"),
    [
        (0, "bb1d6929e95937287fa37d129b756746"),
        (16, "070a16b46b4d4144f79bdd9dd04a287c"),
        (40, "dfa66747de9ae63030ca32611497c827"),
        (64, "51f0bebf7e3b9d92fc49741779363cfe"),
    ],
)
def test_cmac_rfc4493(length: int, mac: str) -> None:
    assert crypto.aes_cmac(RFC4493_KEY, RFC4493_MSG[:length]).hex() == mac


def test_cmac_subkeys_sp800_38b() -> None:
    k1, k2 = crypto._cmac_subkeys(RFC4493_KEY)
    assert k1.hex() == "fbeed618357133667c85e08f7236a8de"
    assert k2.hex() == "f7ddac306ae266ccf90bc11ee46d513b"


def test_truncation_takes_odd_bytes() -> None:
    assert crypto.truncate_mac(bytes(range(16))) == bytes([1, 3, 5, 7, 9, 11, 13, 15])


def test_an10922_worked_example() -> None:
    m = h("04782E21801D80") + h("3042F5") + b"NXP Abu"
    key = crypto.diversify_an10922(h("00112233445566778899AABBCCDDEEFF"), m)
    assert key.hex().upper() == "A8DD63A3B89D54B37CA802473FDA9175"


def test_an10922_full_length_input_differs_from_plain_cmac() -> None:
    master = h("00112233445566778899AABBCCDDEEFF")
    m31 = bytes(range(31))  # D is exactly 32 bytes: K1 path, same as CMAC
    assert crypto.diversify_an10922(master, m31) == crypto.aes_cmac(master, b"\x01" + m31)
    m5 = bytes(5)  # padded to 32 bytes, not 16: not plain CMAC
    assert crypto.diversify_an10922(master, m5) != crypto.aes_cmac(master, b"\x01" + m5)
    with pytest.raises(ValueError):
        crypto.diversify_an10922(master, bytes(32))
    with pytest.raises(ValueError):
        crypto.diversify_an10922(master, b"")


T14_RND_A = h("13C5DB8A5930439FC3DEF9A4C675360F")
T14_RND_B = h("B9E2FC789B64BF237CCCAA20EC7E6E48")
T14_CMD1 = h("9071000002000000")
T14_RESP1 = h("A04C124213C186F22399D33AC2A30215")
T14_CMD2 = h("90AF00002035C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D00")
T14_RESP2 = h("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663")


def test_an12196_session_keys() -> None:
    enc, mac = crypto.session_keys(K0, T14_RND_A, T14_RND_B)
    assert enc.hex().upper() == "1309C877509E5A215007FF0ED19CA564"
    assert mac.hex().upper() == "4C6626F5E72EA694202139295C7A7FC7"


class Scripted:
    """A transmit that checks each command against a script and answers from it."""

    def __init__(self, script: list[tuple[bytes, bytes, tuple[int, int]]]) -> None:
        self.script = list(script)

    def __call__(self, apdu: list[int]) -> tuple[list[int], int, int]:
        want, resp, sw = self.script.pop(0)
        assert bytes(apdu) == want
        return list(resp), sw[0], sw[1]


def test_an12196_authenticate_ev2_first_transcript() -> None:
    t = Scripted([(T14_CMD1, T14_RESP1, (0x91, 0xAF)), (T14_CMD2, T14_RESP2, (0x91, 0x00))])
    s = authenticate_ev2_first(t, 0, K0, random=lambda n: T14_RND_A)
    assert s.ti.hex().upper() == "9D00C4DF"
    assert s.enc_key.hex().upper() == "1309C877509E5A215007FF0ED19CA564"
    assert s.mac_key.hex().upper() == "4C6626F5E72EA694202139295C7A7FC7"
    assert s.cmd_ctr == 0
    assert not t.script


def test_an12196_transcript_with_other_rnd_a_is_refused() -> None:
    """A replayed card answer does not prove the key for a fresh RndA."""
    other = bytes(16)
    cmd2 = b"\x90\xaf\x00\x00\x20" + crypto.aes_cbc_encrypt(K0, other + crypto.rotl1(T14_RND_B))
    t = Scripted([(T14_CMD1, T14_RESP1, (0x91, 0xAF)), (cmd2 + b"\x00", T14_RESP2, (0x91, 0x00))])
    with pytest.raises(CardProtocolError, match="did not prove"):
        authenticate_ev2_first(t, 0, K0, random=lambda n: other)


def test_authenticate_wrong_key_status() -> None:
    t = Scripted([(T14_CMD1, T14_RESP1, (0x91, 0xAF)), (T14_CMD2, b"", (0x91, 0xAE))])
    with pytest.raises(CardProtocolError, match="refused the key"):
        authenticate_ev2_first(t, 0, K0, random=lambda n: T14_RND_A)


def test_an12196_table7_mac_mode() -> None:
    """GetFileSettings(02) in CommMode.MAC: command MAC and response MAC."""
    from doorpi.cards.ev2 import Ev2Session

    mac_key, ti = h("8248134A386E86EB7FAF54A52E536CB6"), h("7A21085E")
    data = h("0040EEEE000100D1FE001F00004400004400002000006A0000")
    t = Scripted(
        [(h("90F5000009026597A457C8CD442C00"), data + h("2A474282E7A47986"), (0x91, 0x00))]
    )
    s = Ev2Session(enc_key=K0, mac_key=mac_key, ti=ti)
    assert s.call(t, 0xF5, b"\x02", full=False) == data
    assert s.cmd_ctr == 1
    # One flipped bit in the answer: refused.
    bad = bytearray(data)
    bad[3] ^= 1
    t = Scripted(
        [(h("90F5000009026597A457C8CD442C00"), bytes(bad) + h("2A474282E7A47986"), (0x91, 0x00))]
    )
    with pytest.raises(CardProtocolError, match="MAC does not match"):
        Ev2Session(enc_key=K0, mac_key=mac_key, ti=ti).call(t, 0xF5, b"\x02", full=False)


def test_an12196_sun_message() -> None:
    sun = crypto.decrypt_sun(K0, K0, h("EF963FF7828658A599F3041510671E88"), h("94EED9EE65337086"))
    assert sun.uid.hex().upper() == "04DE5F1EACC040"
    assert sun.counter == 61
    with pytest.raises(ValueError, match="CMAC"):
        crypto.decrypt_sun(K0, K0, h("EF963FF7828658A599F3041510671E88"), h("94EED9EE65337087"))


def test_padding_round_trip() -> None:
    for n in range(0, 40):
        data = bytes(range(n))
        padded = crypto.pad_iso9797_m2(data)
        assert len(padded) % 16 == 0 and len(padded) > n
        assert crypto.unpad_iso9797_m2(padded) == data
    with pytest.raises(ValueError):
        crypto.unpad_iso9797_m2(bytes(16))
