"""AuthenticateEV2First and EV2 secure messaging over a ``transmit`` function.

Works for MIFARE DESFire EV2/EV3 and NTAG 424 DNA: both speak the native
command set wrapped in ISO 7816 APDUs (CLA 90, status 91 xx). The reader side
is a small state machine with no I/O of its own:

    90 71 00 00 02 <keyNo> 00 00      -> E(K, RndB)                      91 AF
    90 AF 00 00 20 E(K, RndA||RndB') 00 -> E(K, TI||RndA'||PDcap2||PCDcap2) 91 00

then every command in the session carries a command counter and an 8-byte
truncated CMAC (`doorpi.cards.crypto.command_mac`), and every answer is
checked against its CMAC before it is believed (`Ev2Session.call`).

Doorpi's card application (`DOORPI_AID`) holds three AES keys, each derived
from the site's card master key with its own label (`doorpi.cards.keys`):
key 0 the application master key (per card), key 1 the site UID-read key
(the same on every card: it only lets a gate learn the real UID of a card
that shows a random ID), key 2 the entry key (per card, AN10922-diversified
from the real UID). `SecureCard.identify` selects the application,
authenticates with key 1, reads the real UID with GetCardUID (encrypted and
MACed), then authenticates with key 2: only a card holding the key derived
for that UID gets through. A UID copied onto another card, a replayed
transcript or a wrong key fails with `CardProtocolError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from doorpi.cards import crypto
from doorpi.cards.uid import VALID_UID_LENGTHS, CardProtocolError, Transmit, format_sw

#: Doorpi's application on DESFire (3-byte AID, as sent, LSB first).
DOORPI_AID = bytes.fromhex("D0F0D1")
#: NTAG 424 DNA's one application, selected by ISO SelectFile with this DF name
#: (NT4H2421Gx sect. 10.9.1); it has no native SelectApplication (5A).
NTAG424_DF_NAME = bytes.fromhex("D2760000850101")
KEY_APP_MASTER, KEY_UID_READ, KEY_ENTRY = 0, 1, 2

INS_AUTH_EV2_FIRST = 0x71
INS_ADDITIONAL_FRAME = 0xAF
INS_SELECT_APPLICATION = 0x5A
INS_GET_CARD_UID = 0x51
INS_CHANGE_KEY = 0xC4
INS_CREATE_APPLICATION = 0xCA

SW_OK = (0x91, 0x00)
SW_MORE = (0x91, 0xAF)
SW_AUTH_ERROR = (0x91, 0xAE)

RandomSource = Callable[[int], bytes]


def wrap(ins: int, data: bytes = b"") -> list[int]:
    """ISO 7816-4 wrapping of a native command: 90 INS 00 00 [Lc data] 00."""
    if data:
        return [0x90, ins, 0x00, 0x00, len(data), *data, 0x00]
    return [0x90, ins, 0x00, 0x00, 0x00]


def _call(transmit: Transmit, apdu: list[int], what: str) -> tuple[bytes, int, int]:
    data, sw1, sw2 = transmit(apdu)
    try:
        return bytes(data), sw1 & 0xFF, sw2 & 0xFF
    except (TypeError, ValueError) as exc:
        raise CardProtocolError(f"{what}: malformed answer: {exc}") from exc


def select_application(transmit: Transmit, aid: bytes = DOORPI_AID) -> None:
    """SelectApplication (native 5A); `CardProtocolError` if the card has no such app."""
    _, sw1, sw2 = _call(transmit, wrap(INS_SELECT_APPLICATION, aid), "select application")
    if (sw1, sw2) != SW_OK:
        raise CardProtocolError(f"no doorpi application on the card (status {format_sw(sw1, sw2)})")


class KeyRefused(CardProtocolError):
    """The card answered 91 AE to AuthenticateEV2First part 2: it holds another key."""

    def __init__(self, key_no: int) -> None:
        super().__init__(f"authenticate key {key_no}: card refused the key (91AE)")
        self.key_no = key_no


def select_ntag424(transmit: Transmit) -> None:
    """ISO SelectFile of NTAG 424 DNA's application by DF name (00 A4 04 0C, status 90 00)."""
    apdu = [0x00, 0xA4, 0x04, 0x0C, len(NTAG424_DF_NAME), *NTAG424_DF_NAME, 0x00]
    _, sw1, sw2 = _call(transmit, apdu, "select NTAG 424 application")
    if (sw1, sw2) != (0x90, 0x00):
        raise CardProtocolError(f"not an NTAG 424 DNA (status {format_sw(sw1, sw2)})")


@dataclass
class Ev2Session:
    """An authenticated EV2 session: keys, transaction identifier, counter."""

    enc_key: bytes
    mac_key: bytes
    ti: bytes
    cmd_ctr: int = 0
    key_no: int = 0
    pd_caps: bytes = field(default=b"", repr=False)

    def call(
        self,
        transmit: Transmit,
        ins: int,
        header: bytes = b"",
        data: bytes = b"",
        *,
        full: bool,
        answer_mac: bool = True,
    ) -> bytes:
        """Send one command in CommMode.MAC (``full=False``) or CommMode.Full.

        Command data is encrypted in Full mode; the command is MACed either
        way. The answer's MAC is checked before anything else (a wrong MAC
        raises `CardProtocolError`), and in Full mode the answer is decrypted
        and unpadded. Returns the plain response data.
        """
        if self.cmd_ctr >= 0xFFFF:
            raise CardProtocolError("EV2 command counter exhausted")
        payload = data
        if full and data:
            iv = crypto.command_iv(self.enc_key, self.ti, self.cmd_ctr)
            payload = crypto.aes_cbc_encrypt(self.enc_key, crypto.pad_iso9797_m2(data), iv)
        mac = crypto.command_mac(self.mac_key, ins, self.cmd_ctr, self.ti, header + payload)
        resp, sw1, sw2 = _call(transmit, wrap(ins, header + payload + mac), f"command {ins:02X}")
        self.cmd_ctr += 1
        if sw1 != 0x91 or sw2 != 0x00:
            raise CardProtocolError(f"command {ins:02X} refused: status {format_sw(sw1, sw2)}")
        if not answer_mac:  # ChangeKey of the session's own key: the session ends, no MAC
            return resp
        if len(resp) < 8:
            raise CardProtocolError(f"command {ins:02X}: answer has no MAC ({len(resp)} bytes)")
        body, mac_r = resp[:-8], resp[-8:]
        want = crypto.response_mac(self.mac_key, sw2, self.cmd_ctr, self.ti, body)
        if not crypto.macs_equal(want, mac_r):
            raise CardProtocolError(f"command {ins:02X}: answer MAC does not match")
        if full and body:
            if len(body) % 16:
                raise CardProtocolError(f"command {ins:02X}: encrypted answer not whole blocks")
            iv = crypto.response_iv(self.enc_key, self.ti, self.cmd_ctr)
            try:
                return crypto.unpad_iso9797_m2(crypto.aes_cbc_decrypt(self.enc_key, body, iv))
            except ValueError as exc:
                raise CardProtocolError(f"command {ins:02X}: {exc} in encrypted answer") from exc
        return body


def authenticate_ev2_first(
    transmit: Transmit, key_no: int, key: bytes, *, random: RandomSource = os.urandom
) -> Ev2Session:
    """AES mutual authentication (AuthenticateEV2First, NT4H2421Gx sect. 10.4.1).

    ``random(16)`` supplies RndA (tests pass AN12196's fixed value). Raises
    `CardProtocolError` naming the step on any wrong status, length, or if
    the card's RndA' does not prove it knows ``key``.
    """
    resp, sw1, sw2 = _call(transmit, wrap(INS_AUTH_EV2_FIRST, bytes([key_no, 0])), "authenticate")
    if (sw1, sw2) != SW_MORE:
        raise CardProtocolError(f"authenticate key {key_no}: status {format_sw(sw1, sw2)}")
    if len(resp) != 16:
        raise CardProtocolError(f"authenticate key {key_no}: challenge is {len(resp)} bytes")
    rnd_b = crypto.aes_cbc_decrypt(key, resp)
    rnd_a = random(16)
    token = crypto.aes_cbc_encrypt(key, rnd_a + crypto.rotl1(rnd_b))
    resp, sw1, sw2 = _call(transmit, wrap(INS_ADDITIONAL_FRAME, token), "authenticate part 2")
    if (sw1, sw2) == SW_AUTH_ERROR:
        raise KeyRefused(key_no)
    if (sw1, sw2) != SW_OK:
        raise CardProtocolError(f"authenticate key {key_no} part 2: status {format_sw(sw1, sw2)}")
    if len(resp) != 32:
        raise CardProtocolError(f"authenticate key {key_no}: answer is {len(resp)} bytes")
    plain = crypto.aes_cbc_decrypt(key, resp)
    ti, rnd_a_rot = plain[0:4], plain[4:20]
    if not crypto.macs_equal(rnd_a_rot, crypto.rotl1(rnd_a)):
        raise CardProtocolError(f"authenticate key {key_no}: card did not prove the key")
    enc, mac = crypto.session_keys(key, rnd_a, rnd_b)
    return Ev2Session(enc, mac, ti, 0, key_no, plain[20:32])


def get_card_uid(transmit: Transmit, session: Ev2Session) -> bytes:
    """GetCardUID (native 51) in CommMode.Full: the real UID, MAC-checked."""
    uid = session.call(transmit, INS_GET_CARD_UID, full=True)
    if len(uid) not in VALID_UID_LENGTHS:
        raise CardProtocolError(f"GetCardUID: bad UID length {len(uid)}")
    return uid


class CardKeySource(Protocol):
    """Where a gate gets card keys: the site-wide UID-read key and per-card entry keys."""

    def uid_read_key(self) -> bytes: ...

    def entry_key(self, uid: bytes) -> bytes | None: ...


class SecureCard:
    """`CardProtocol` for doorpi's DESFire EV2/EV3 / NTAG 424 DNA application.

    ``identify`` returns the card's real UID, proven by authentication with
    the card's own entry key. ``random`` is for tests only.
    """

    method = "desfire_ev2"

    def __init__(self, keys: CardKeySource, *, random: RandomSource = os.urandom) -> None:
        self.keys = keys
        self.random = random

    def identify(self, transmit: Transmit) -> bytes:
        select_application(transmit)
        return self.authenticate_selected(transmit)

    def authenticate_selected(self, transmit: Transmit) -> bytes:
        """`identify` once doorpi's application is selected (DESFire) or NTAG 424's is."""
        s1 = authenticate_ev2_first(
            transmit, KEY_UID_READ, self.keys.uid_read_key(), random=self.random
        )
        uid = get_card_uid(transmit, s1)
        key = self.keys.entry_key(uid)
        if key is None:
            raise CardProtocolError("no entry key for this card")
        authenticate_ev2_first(transmit, KEY_ENTRY, key, random=self.random)
        return uid


__all__ = [
    "DOORPI_AID",
    "KEY_APP_MASTER",
    "KEY_ENTRY",
    "KEY_UID_READ",
    "NTAG424_DF_NAME",
    "CardKeySource",
    "Ev2Session",
    "KeyRefused",
    "SecureCard",
    "authenticate_ev2_first",
    "get_card_uid",
    "select_application",
    "select_ntag424",
    "wrap",
]
