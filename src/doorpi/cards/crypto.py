"""AES-128 building blocks for MIFARE DESFire EV2/EV3 and NTAG 424 DNA.

Pure functions, no I/O. The AES and CMAC primitives come from `cryptography`
(already a dependency, used elsewhere for AES); everything NXP-specific is here:

* `aes_cmac` -- AES-CMAC (NIST SP 800-38B, RFC 4493), 16 bytes.
* `mac_t` -- the 8-byte truncation EV2 secure messaging uses: the
  even-numbered bytes S14, S12, ... S0 of the CMAC, i.e. bytes 1, 3, .., 15
  counting from 0 (NT4H2421Gx datasheet sect. 9.1.3; AN12196 examples).
* `diversify_an10922` -- AES-128 key diversification (NXP AN10922 sect. 2.2):
  CMAC over ``0x01 || M`` padded to 32 bytes, M up to 31 bytes.
* `session_keys` -- SesAuthENCKey / SesAuthMACKey from RndA and RndB
  (NT4H2421Gx sect. 9.1.7; AN12196 sect. 6.6).
* `decrypt_sun` -- the SUN/SDM "e=" PICCData and its CMAC (AN12196 sect. 3).

Every value is ``bytes``; keys are 16 bytes, random numbers RndA/RndB 16
bytes, TI 4 bytes, command counters are ints (little-endian 2 bytes on the
wire). Wrong sizes raise ``ValueError``.
"""

from __future__ import annotations

import hmac
import zlib
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

BLOCK = 16
KEY_LEN = 16
ZERO_IV = bytes(BLOCK)


def _check_key(key: bytes) -> None:
    if len(key) != KEY_LEN:
        raise ValueError(f"AES-128 key must be 16 bytes, got {len(key)}")


def aes_cmac(key: bytes, message: bytes) -> bytes:
    """AES-128 CMAC of ``message`` (NIST SP 800-38B); 16 bytes."""
    _check_key(key)
    c = CMAC(algorithms.AES(key))
    c.update(message)
    return c.finalize()


def truncate_mac(full: bytes) -> bytes:
    """MACt: bytes 1, 3, 5, .., 15 of a 16-byte CMAC (8 bytes)."""
    if len(full) != BLOCK:
        raise ValueError(f"CMAC must be 16 bytes, got {len(full)}")
    return full[1::2]


def mac_t(key: bytes, message: bytes) -> bytes:
    """Truncated CMAC as sent on the wire by EV2 secure messaging (8 bytes)."""
    return truncate_mac(aes_cmac(key, message))


def aes_cbc_encrypt(key: bytes, data: bytes, iv: bytes = ZERO_IV) -> bytes:
    """AES-128-CBC without padding; ``data`` must be a multiple of 16 bytes."""
    _check_key(key)
    if len(data) % BLOCK:
        raise ValueError(f"CBC data must be a multiple of 16 bytes, got {len(data)}")
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_cbc_decrypt(key: bytes, data: bytes, iv: bytes = ZERO_IV) -> bytes:
    """Inverse of `aes_cbc_encrypt`."""
    _check_key(key)
    if len(data) % BLOCK:
        raise ValueError(f"CBC data must be a multiple of 16 bytes, got {len(data)}")
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return dec.update(data) + dec.finalize()


def aes_ecb_encrypt_block(key: bytes, block: bytes) -> bytes:
    """One AES-128 block (for the secure-messaging IVs)."""
    return aes_cbc_encrypt(key, block)


def rotl1(data: bytes) -> bytes:
    """Rotate left by one byte (RndA', RndB' in AuthenticateEV2First)."""
    return data[1:] + data[:1]


def pad_iso9797_m2(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80 then zeros up to a block (always adds)."""
    n = len(data) + 1
    return data + b"\x80" + bytes((-n) % BLOCK)


def unpad_iso9797_m2(data: bytes) -> bytes:
    """Strip method-2 padding; ``ValueError`` if there is none."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise ValueError("bad padding")
    return stripped[:-1]


def diversify_an10922(master_key: bytes, m: bytes) -> bytes:
    """AES-128 key diversification, NXP AN10922 sect. 2.2 (one 16-byte key).

    ``m`` is the diversification input (UID || AID || system identifier in
    the note's example), 1..31 bytes. D = 0x01 || M; if D is shorter than 32
    bytes it is padded with 0x80 00.. to 32 bytes and the last block is
    XORed with subkey K2, else with K1; the key is the last CBC block. This
    equals CMAC except for the padding to 32 bytes, so it is computed here
    with the CMAC subkeys directly.
    """
    _check_key(master_key)
    if not 1 <= len(m) <= 31:
        raise ValueError(f"AN10922 diversification input must be 1..31 bytes, got {len(m)}")
    d = b"\x01" + m
    k1, k2 = _cmac_subkeys(master_key)
    if len(d) < 32:
        d = d + b"\x80" + bytes(31 - len(d))
        last_key = k2
    else:
        last_key = k1
    d = d[:16] + bytes(a ^ b for a, b in zip(d[16:], last_key, strict=True))
    return aes_cbc_encrypt(master_key, d)[16:]


def _cmac_subkeys(key: bytes) -> tuple[bytes, bytes]:
    """K1, K2 of NIST SP 800-38B sect. 6.1 (Rb = 0x87 for 128-bit blocks)."""
    l_ = int.from_bytes(aes_ecb_encrypt_block(key, ZERO_IV), "big")
    mask = (1 << 128) - 1

    def dbl(v: int) -> int:
        return ((v << 1) & mask) ^ (0x87 if v >> 127 else 0)

    k1 = dbl(l_)
    return k1.to_bytes(16, "big"), dbl(k1).to_bytes(16, "big")


def session_keys(key: bytes, rnd_a: bytes, rnd_b: bytes) -> tuple[bytes, bytes]:
    """(SesAuthENCKey, SesAuthMACKey) after AuthenticateEV2First.

    SV = label(2) || 00 01 00 80 || RndA[15..14] || (RndA[13..8] XOR
    RndB[15..10]) || RndB[9..0] || RndA[7..0], with byte 15 the first byte
    on the wire; label A5 5A for ENC, 5A A5 for MAC (NT4H2421Gx sect. 9.1.7).
    """
    _check_key(key)
    if len(rnd_a) != BLOCK or len(rnd_b) != BLOCK:
        raise ValueError("RndA and RndB must be 16 bytes")
    tail = (
        b"\x00\x01\x00\x80"
        + rnd_a[0:2]
        + bytes(a ^ b for a, b in zip(rnd_a[2:8], rnd_b[0:6], strict=True))
        + rnd_b[6:16]
        + rnd_a[8:16]
    )
    return aes_cmac(key, b"\xa5\x5a" + tail), aes_cmac(key, b"\x5a\xa5" + tail)


def command_iv(enc_key: bytes, ti: bytes, cmd_ctr: int) -> bytes:
    """IV for encrypting command data: E(K, A5 5A || TI || CmdCtr(LE) || 0*8)."""
    return aes_ecb_encrypt_block(
        enc_key, b"\xa5\x5a" + ti + cmd_ctr.to_bytes(2, "little") + bytes(8)
    )


def response_iv(enc_key: bytes, ti: bytes, cmd_ctr: int) -> bytes:
    """IV for decrypting response data: E(K, 5A A5 || TI || CmdCtr(LE) || 0*8).

    ``cmd_ctr`` is the counter *after* the command (already incremented).
    """
    return aes_ecb_encrypt_block(
        enc_key, b"\x5a\xa5" + ti + cmd_ctr.to_bytes(2, "little") + bytes(8)
    )


def command_mac(mac_key: bytes, ins: int, cmd_ctr: int, ti: bytes, header_and_data: bytes) -> bytes:
    """MACt over Cmd || CmdCtr || TI || CmdHeader || CmdData (8 bytes)."""
    return mac_t(mac_key, bytes([ins]) + cmd_ctr.to_bytes(2, "little") + ti + header_and_data)


def response_mac(mac_key: bytes, rc: int, cmd_ctr: int, ti: bytes, data: bytes) -> bytes:
    """MACt over RC || CmdCtr+1 || TI || RespData (``cmd_ctr`` already incremented)."""
    return mac_t(mac_key, bytes([rc]) + cmd_ctr.to_bytes(2, "little") + ti + data)


def crc32_desfire(data: bytes) -> bytes:
    """DESFire CRC32 (ChangeKey): IEEE 802.3 CRC32 without the final inversion, LE."""
    return ((~zlib.crc32(data)) & 0xFFFFFFFF).to_bytes(4, "little")


def macs_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of MACs."""
    return hmac.compare_digest(a, b)


@dataclass(frozen=True)
class SunMessage:
    """What an NTAG 424 DNA SUN (SDM) message proves: UID and read counter."""

    uid: bytes
    counter: int


def decrypt_sun(meta_key: bytes, file_key: bytes, e: bytes, cmac: bytes) -> SunMessage:
    """Decrypt PICCData (``e``) and check the SDM MAC over an empty MAC input.

    PICCData = PICCDataTag || UID(7) || SDMReadCtr(3, LE) || random. The MAC
    key is CMAC(file_key, 3C C3 00 01 00 80 || UID || SDMReadCtr) and the MAC
    is MACt(that key, empty) (AN12196 sect. 3.3/3.4). Raises ``ValueError``
    on a wrong tag byte or MAC. A verifier must also demand that the counter
    rises; a SUN message alone is replayable.
    """
    if len(e) != BLOCK or len(cmac) != 8:
        raise ValueError("SUN e must be 16 bytes and the CMAC 8 bytes")
    plain = aes_cbc_decrypt(meta_key, e)
    tag = plain[0]
    if tag != 0xC7:  # UID mirrored (0x80), counter mirrored (0x40), UID length 7
        raise ValueError(f"unsupported PICCDataTag {tag:02X}")
    uid, ctr = plain[1:8], plain[8:11]
    sv2 = b"\x3c\xc3\x00\x01\x00\x80" + uid + ctr
    sdm_mac_key = aes_cmac(file_key, sv2)
    if not macs_equal(mac_t(sdm_mac_key, b""), cmac):
        raise ValueError("SUN CMAC does not match")
    return SunMessage(uid=uid, counter=int.from_bytes(ctr, "little"))


__all__ = [
    "SunMessage",
    "aes_cbc_decrypt",
    "aes_cbc_encrypt",
    "aes_cmac",
    "command_iv",
    "command_mac",
    "crc32_desfire",
    "decrypt_sun",
    "diversify_an10922",
    "mac_t",
    "macs_equal",
    "pad_iso9797_m2",
    "response_iv",
    "response_mac",
    "rotl1",
    "session_keys",
    "truncate_mac",
    "unpad_iso9797_m2",
]
