"""Hostile input (issue #18): the config loader, card responses from the reader side
and keypad streams, fuzzed with hypothesis. The ``@example``s are the kept corpus:
inputs that once mattered or sit on a boundary; hypothesis adds its own each run.

Properties: the config loader gives a Config or one ConfigError line, never another
exception; a card protocol gives a valid UID or a CardProtocolError, never another
exception; a keypad stream never raises and never releases the strike unless the
resident's PIN was typed and submitted in it.
"""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_support import scale, tally

from doorpi.cards.uid import VALID_UID_LENGTHS, CardProtocolError, UidCard
from doorpi.config import ConfigError, default_config_text, load_config
from doorpi.core.events import KeyPressed

EXAMPLES = scale(150, 4000)
PAD_EXAMPLES = scale(50, 1500)  # each stream also lets 1000 s of gate time pass
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])  # fmt: skip

# ------------------------------------------------------------------ config loader


def _shipped_keys() -> dict[str, list[str]]:
    """Every table and key of the shipped config, plus a few that do not exist (a typo
    or a key from another product must be refused, not ignored)."""
    import tomllib

    doc = tomllib.loads(default_config_text())
    keys = {t: sorted(v) for t, v in doc.items() if isinstance(v, dict)}
    for t, extra in (("door", "fail_secure"), ("gpio", "active_high"), ("face", "model")):
        keys[t].append(extra)
    return keys


KEYS = _shipped_keys()
PLACES = [(t, k) for t in sorted(KEYS) for k in KEYS[t]]
toml_value = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=40),
    st.lists(st.integers(-5, 60), max_size=5),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(
        st.text(string.ascii_lowercase, min_size=1, max_size=6), st.integers(), max_size=2
    ),
)


def _expect_config_or_one_line(path: Path, part: str) -> None:
    try:
        load_config(path, layers=False)
    except ConfigError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg and "Traceback" not in msg, msg
        assert str(path) in msg, msg  # names where
        tally(part, "refused with one line")
        return
    tally(part, "loaded")


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(PLACES), toml_value),
                      min_size=1, max_size=4))  # fmt: skip
@example(edits=[(("door", "unlock_seconds"), float("nan"))])
@example(edits=[(("door", "unlock_seconds"), 10**30)])
@example(edits=[(("gpio", "strike"), -1)])
@example(edits=[(("gpio", "strike"), 2)])  # a reserved pin
@example(edits=[(("keypad", "rows"), [5, 5, 5, 5])])  # rows repeated
@example(edits=[(("site", "timezone"), "Mars/Olympus")])
@example(edits=[(("site", "data_dir"), "\x00")])
@example(edits=[(("audit", "governance_retention_days"), "\n")])  # found: 2-line message
@example(edits=[(("door", "fail_secure"), True)])  # no such key
@example(edits=[(("door", "access"), ["card", "face"])])  # face alone at a card door
def test_config_loader_fuzz(tmp_path_factory: pytest.TempPathFactory, edits: list) -> None:
    """Random values in the shipped document's real keys: valid TOML, so each one
    reaches the validator (the bytes fuzzer below covers documents that do not parse)."""
    import tomllib

    import tomli_w

    doc = tomllib.loads(default_config_text())
    for (section, key), value in edits:
        doc[section][key] = value
    path = tmp_path_factory.mktemp("cfg") / "doorpi.toml"
    path.write_text(tomli_w.dumps(doc), encoding="utf-8")
    _expect_config_or_one_line(path, "fuzz_config_documents")


@FUZZ
@given(raw=st.binary(max_size=300))
@example(raw=b"\xef\xbb\xbf[site]\n")  # UTF-8 byte order mark
@example(raw=b"\xff\xfe[\x00s\x00")  # UTF-16
@example(raw=b"[site]\ndata_dir = '" + b"a" * 5000 + b"'\n")
@example(raw=b"[[site]]\n")
@example(raw=b"a = 1\na = 2\n")
def test_config_bytes_fuzz(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "doorpi.toml"
    path.write_bytes(raw)
    _expect_config_or_one_line(path, "fuzz_config_bytes")


# ------------------------------------------------------------------ card responses

response = st.tuples(
    st.lists(st.integers(-300, 600), max_size=40),  # pyscard gives ints; a bad driver, anything
    st.integers(-1, 300),
    st.integers(-1, 300),
)
# Answers a real card could give: byte values, status 90 00, any length (a UID is
# 4, 7 or 10 bytes); half the examples, so the accepting side is tried too.
well_formed = st.tuples(
    st.lists(st.integers(0, 255), min_size=0, max_size=12), st.just(0x90), st.just(0x00)
)


@FUZZ
@given(resp=st.one_of(response, well_formed))
@example(resp=([], 0x90, 0x00))
@example(resp=([0] * 7, 0x90, 0x00))
@example(resp=([256, 1, 2, 3], 0x90, 0x00))
@example(resp=([-1, 1, 2, 3], 0x90, 0x00))
@example(resp=([4, 1, 2, 3, 4, 5, 6], 0x63, 0x00))
def test_uid_card_response_fuzz(resp: tuple) -> None:
    try:
        uid = UidCard().identify(lambda apdu: resp)
    except CardProtocolError as exc:
        assert "\n" not in str(exc)
        tally("fuzz_uid_responses", "refused")
        return
    assert isinstance(uid, bytes) and len(uid) in VALID_UID_LENGTHS and any(uid)
    tally("fuzz_uid_responses", "valid uid")


class _Keys:
    def uid_read_key(self) -> bytes:
        return bytes(16)

    def entry_key(self, uid: bytes) -> bytes | None:
        return bytes(range(16))


@FUZZ
@given(resps=st.lists(response, min_size=1, max_size=6))
@example(resps=[([], 0x90, 0x00)] * 6)
@example(resps=[([], 0x91, 0x00), ([0] * 16, 0x91, 0xAF)])  # AuthenticateEV2First, garbage E(RndB)
@example(resps=[([], 0x91, 0x00), ([0] * 15, 0x91, 0xAF)])  # one byte short
@example(resps=[([], 0x91, 0x00), ([0] * 16, 0x91, 0xAE)])  # wrong key
def test_secure_card_response_fuzz(resps: list) -> None:
    from doorpi.cards.ev2 import SecureCard

    answers = iter(resps)

    def transmit(apdu: list[int]) -> tuple:
        try:
            return next(answers)
        except StopIteration:
            raise CardProtocolError("card removed") from None

    try:
        uid = SecureCard(_Keys(), random=lambda n: bytes(n)).identify(transmit)
    except CardProtocolError as exc:
        assert "\n" not in str(exc)
        tally("fuzz_secure_card_responses", "refused")
        return
    raise AssertionError(f"random responses authenticated as {uid!r}")


# ------------------------------------------------------------------ keypad streams

PIN, KEYPAD_ID = "48159", "101"
KEYS_PAD = [*"0123456789*#FA", "B", "C", "D", "", "##", "٣", "¹", "KEY_1", "\x00"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    from doorpi.clocks import ManualClock
    from doorpi.sim.site import SimulatedSite, sim_config

    cfg = sim_config({"pin": {"opslimit": 1, "memlimit_kib": 8192}},
                     tmp_path_factory.mktemp("pad") / "data")  # fmt: skip
    s = SimulatedSite(cfg, ManualClock(1_772_442_000.0))
    s.add_resident({"name": "A", "keypad_id": KEYPAD_ID, "pin": PIN})
    yield s
    s.close()


@settings(FUZZ, max_examples=PAD_EXAMPLES)
@given(keys=st.lists(st.one_of(st.sampled_from(KEYS_PAD), st.text(max_size=3)), max_size=40),
       gaps=st.lists(st.floats(0, 30), max_size=40))  # fmt: skip
@example(keys=[*KEYPAD_ID, "#", *PIN, "#"], gaps=[])  # the resident's own entry: must grant
@example(keys=[*"٣" * 5, "#"], gaps=[])
@example(keys=["1"] * 200 + ["#"], gaps=[])
@example(keys=[*KEYPAD_ID, "#", *PIN[:-1], "*", *PIN, "#"], gaps=[])
def test_keypad_stream_fuzz(site, keys: list[str], gaps: list[float]) -> None:
    assert site.strike_pin.state is False
    site.strike_pin.clear_states()
    for i, key in enumerate(keys):
        site.clock.advance(gaps[i] if i < len(gaps) else 0.2)
        # Raw key events, as a keypad driver would emit them: the gate itself must
        # cope with any (site.key refuses non-keypad text before the gate sees it).
        site.gate.submit(KeyPressed(key, "keypad"))
        site.gate.process_pending()
    granted = True in [s.state for s in site.strike_pin.states]
    site.advance(6, step=0.5)  # the unlock time passes: locked again (also after a fuzzed grant)
    typed = "".join(keys)
    if granted:
        assert PIN + "#" in typed, f"strike released by {keys!r}"
    if keys == [*KEYPAD_ID, "#", *PIN, "#"]:
        assert granted, "the resident's own PIN did not open"
    site.advance(1000, step=5.0)  # relock, and past the longest lockout (900 s)
    assert site.strike_pin.state is False
    tally("fuzz_keypad_streams", "granted (PIN typed)" if granted else "not granted")
    tally("fuzz_keypad_streams_keys", "keys", len(keys))
