"""The card side of AuthenticateEV2First: a DESFire EV2 / NTAG 424 DNA emulator.

An `Ev2CardApp` is an APDU handler for `doorpi.sim.vpcd_card.VirtualCard`
(``VirtualCard(uid, handler=Ev2CardApp(...))``), so the reader code runs
against a real pcscd + vpcd exactly as against a real card. It implements
the commands doorpi uses, ISO-wrapped (CLA 90, status 91 xx):

* ``FF CA 00 00 00`` (the reader's UID): the real UID, or with
  ``random_uid=True`` a fresh random 4-byte ID (08 xx xx xx) every time the
  card is powered, as DESFire EV2+ and phones do;
* SelectApplication (5A), AuthenticateEV2First (71, then AF), GetCardUID
  (51, CommMode.Full: the real UID only after authentication);
* for issuing: CreateApplication (CA, MAC mode, needs the PICC master key)
  and ChangeKey (C4, Full mode, needs the application master key).

With ``ntag424=True`` it is an NTAG 424 DNA instead: its one application is
selected with ISO SelectFile by DF name (00 A4 04 0C, D2760000850101 ->
90 00) and the native SelectApplication is an illegal command (91 1C); its
keys 0-2 are doorpi's (a tag with factory keys has them all zero).

A blank card (``Ev2CardApp.blank``) has PICC master key 0 and no
application, as delivered. Wrong key -> 91 AE; unknown command -> 91 1C;
no such application -> 91 A0; not authenticated -> 91 AE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from doorpi.cards import crypto
from doorpi.cards.ev2 import DOORPI_AID, NTAG424_DF_NAME
from doorpi.cards.keys import SiteCardKeys

PICC_AID = bytes(3)
SW_OK = b"\x91\x00"
SW_MORE = b"\x91\xaf"
SW_AUTH_ERROR = b"\x91\xae"
SW_ILLEGAL_COMMAND = b"\x91\x1c"
SW_APP_NOT_FOUND = b"\x91\xa0"
SW_LENGTH_ERROR = b"\x91\x7e"
SW_INTEGRITY_ERROR = b"\x91\x1e"
SW_NO_SUCH_KEY = b"\x91\x40"
SW_DUPLICATE = b"\x91\xde"


@dataclass
class _Session:
    key_no: int
    enc: bytes
    mac: bytes
    ti: bytes
    ctr: int = 0


@dataclass
class Ev2CardApp:
    """A card with a PICC master key and applications of AES keys.

    ``apps`` maps a 3-byte AID to its list of 16-byte keys. The card keeps
    no state across power cycles other than its keys (as a real card).
    """

    uid: bytes
    apps: dict[bytes, list[bytes]] = field(default_factory=dict)
    picc_key: bytes = bytes(16)
    random_uid: bool = False
    ntag424: bool = False
    _selected: bytes = PICC_AID
    _pending: tuple[int, bytes, bytes] | None = None  # key_no, key, RndB
    _session: _Session | None = None
    _session_uid: bytes | None = None

    @classmethod
    def blank(cls, uid: bytes, *, random_uid: bool = False) -> Ev2CardApp:
        return cls(uid=bytes(uid), random_uid=random_uid)

    @classmethod
    def issued(
        cls, site: SiteCardKeys, uid: bytes, *, random_uid: bool = False, ntag424: bool = False
    ) -> Ev2CardApp:
        """A card as `doorpi admin card issue` leaves it (for tests and the demo);
        ``ntag424``: an NTAG 424 DNA with doorpi's keys in its slots 0-2."""
        keys = [site.app_master_key(uid), site.uid_read_key(), site.entry_key(uid) or b""]
        picc = site.picc_master_key(uid)
        return cls(uid=bytes(uid), apps={DOORPI_AID: keys}, picc_key=picc,
                   random_uid=random_uid, ntag424=ntag424)  # fmt: skip

    @classmethod
    def ntag424_factory(cls, uid: bytes) -> Ev2CardApp:
        """An NTAG 424 DNA as delivered: its application with five all-zero keys."""
        return cls(uid=bytes(uid), apps={DOORPI_AID: [bytes(16)] * 5}, ntag424=True)

    # ------------------------------------------------------------------ entry

    def __call__(self, apdu: bytes) -> bytes:
        if apdu[:2] == b"\xff\xca":
            return self._presented_uid() + b"\x90\x00"
        if self.ntag424 and apdu[:4] == b"\x00\xa4\x04\x0c":
            self._session, self._pending = None, None
            if apdu[5 : 5 + apdu[4]] != NTAG424_DF_NAME:
                return b"\x6a\x82"  # file not found
            self._selected = DOORPI_AID
            return b"\x90\x00"
        if self.ntag424 and apdu[:2] in (b"\x90\x5a", b"\x90\xca"):
            self._session = None
            return SW_ILLEGAL_COMMAND
        if len(apdu) < 5 or apdu[0] != 0x90:
            return b"\x6e\x00"  # class not supported
        ins = apdu[1]
        data = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        handler = {
            0x5A: self._select,
            0x71: self._auth1,
            0xAF: self._auth2,
            0x51: self._get_uid,
            0xCA: self._create_app,
            0xC4: self._change_key,
        }.get(ins)
        if handler is None:
            self._session = None
            return SW_ILLEGAL_COMMAND
        if ins != 0xAF:
            self._pending = None
        return handler(data)

    def power_cycle(self) -> None:
        """Card left the field: forget selection, session and the random ID."""
        self._selected, self._pending, self._session, self._session_uid = PICC_AID, None, None, None

    def _presented_uid(self) -> bytes:
        if not self.random_uid:
            return self.uid
        if self._session_uid is None:
            self._session_uid = b"\x08" + os.urandom(3)
        return self._session_uid

    def _keys(self) -> list[bytes]:
        return [self.picc_key] if self._selected == PICC_AID else self.apps[self._selected]

    # ------------------------------------------------------------------ commands

    def _select(self, data: bytes) -> bytes:
        self._session = None
        if len(data) != 3:
            return SW_LENGTH_ERROR
        if data != PICC_AID and data not in self.apps:
            return SW_APP_NOT_FOUND
        self._selected = data
        return SW_OK

    def _auth1(self, data: bytes) -> bytes:
        self._session = None
        if len(data) < 2:
            return SW_LENGTH_ERROR
        keys = self._keys()
        if data[0] >= len(keys):
            return SW_NO_SUCH_KEY
        key = keys[data[0]]
        rnd_b = os.urandom(16)
        self._pending = (data[0], key, rnd_b)
        return crypto.aes_cbc_encrypt(key, rnd_b) + SW_MORE

    def _auth2(self, data: bytes) -> bytes:
        pending, self._pending = self._pending, None
        if pending is None:
            return SW_ILLEGAL_COMMAND
        if len(data) != 32:
            return SW_LENGTH_ERROR
        key_no, key, rnd_b = pending
        plain = crypto.aes_cbc_decrypt(key, data)
        rnd_a, rnd_b_rot = plain[:16], plain[16:]
        if not crypto.macs_equal(rnd_b_rot, crypto.rotl1(rnd_b)):
            return SW_AUTH_ERROR
        ti = os.urandom(4)
        enc, mac = crypto.session_keys(key, rnd_a, rnd_b)
        self._session = _Session(key_no, enc, mac, ti)
        answer = crypto.aes_cbc_encrypt(key, ti + crypto.rotl1(rnd_a) + bytes(12))
        return answer + SW_OK

    def _check_cmd(self, ins: int, data: bytes, header_len: int) -> tuple[_Session, bytes] | None:
        """Check a MACed command; return (session, data before the MAC) or None."""
        s = self._session
        if s is None or len(data) < 8 + header_len:
            return None
        body, mac = data[:-8], data[-8:]
        if not crypto.macs_equal(crypto.command_mac(s.mac, ins, s.ctr, s.ti, body), mac):
            return None
        return s, body

    def _answer(self, s: _Session, plain: bytes | None, *, full: bool) -> bytes:
        s.ctr += 1
        body = b""
        if plain is not None:
            body = plain
            if full:
                iv = crypto.response_iv(s.enc, s.ti, s.ctr)
                body = crypto.aes_cbc_encrypt(s.enc, crypto.pad_iso9797_m2(plain), iv)
        return body + crypto.response_mac(s.mac, 0x00, s.ctr, s.ti, body) + SW_OK

    def _fail(self, sw: bytes) -> bytes:
        self._session = None
        return sw

    def _get_uid(self, data: bytes) -> bytes:
        checked = self._check_cmd(0x51, data, 0)
        if checked is None:
            return self._fail(SW_AUTH_ERROR)
        return self._answer(checked[0], self.uid, full=True)

    def _create_app(self, data: bytes) -> bytes:
        checked = self._check_cmd(0xCA, data, 5)
        if checked is None or self._selected != PICC_AID or checked[0].key_no != 0:
            return self._fail(SW_AUTH_ERROR)
        s, body = checked
        aid, n_keys = body[:3], body[4] & 0x0F
        if aid in self.apps:
            return self._fail(SW_DUPLICATE)
        if not 1 <= n_keys <= 14:
            return self._fail(SW_LENGTH_ERROR)
        self.apps[aid] = [bytes(16)] * n_keys
        return self._answer(s, b"", full=False)

    def _change_key(self, data: bytes) -> bytes:
        """ChangeKey, Full mode: KeyNo || E(new key [XOR old] || version [|| CRC32]) || MAC."""
        checked = self._check_cmd(0xC4, data, 1)
        if checked is None or checked[0].key_no != 0:
            return self._fail(SW_AUTH_ERROR)
        s, body = checked
        key_no, cipher = body[0], body[1:]
        keys = self._keys()
        if key_no >= len(keys) or len(cipher) % 16 or not cipher:
            return self._fail(SW_LENGTH_ERROR)
        iv = crypto.command_iv(s.enc, s.ti, s.ctr)
        try:
            plain = crypto.unpad_iso9797_m2(crypto.aes_cbc_decrypt(s.enc, cipher, iv))
        except ValueError:
            return self._fail(SW_INTEGRITY_ERROR)
        if key_no == 0:  # the authenticated key itself: new key || version
            if len(plain) != 17:
                return self._fail(SW_INTEGRITY_ERROR)
            keys[0] = plain[:16]
            if self._selected == PICC_AID:
                self.picc_key = plain[:16]
            self._session = None  # the session ends with its key (answer has no MAC)
            return SW_OK
        if len(plain) != 21:
            return self._fail(SW_INTEGRITY_ERROR)
        new = bytes(a ^ b for a, b in zip(plain[:16], keys[key_no], strict=True))
        if crypto.crc32_desfire(new) != plain[17:21]:
            return self._fail(SW_INTEGRITY_ERROR)
        keys[key_no] = new
        return self._answer(s, None, full=False)


__all__ = ["Ev2CardApp"]
