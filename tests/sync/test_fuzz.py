"""Fuzzing the bundle parser with hypothesis, seeded by the corpus in corpus/.

Properties: for any input, open_bundle / parse_body either return a bundle or
raise BundleError with a one-line message; nothing else escapes. Signed bodies
are fuzzed too (a stolen site key or an admin-side bug must not crash a gate),
and a full import of a fuzzed body leaves the database intact and unchanged
unless the import was applied. Set FUZZ_EXAMPLES to run longer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doorpi.store.db import integrity_check
from doorpi.sync.bundle import BundleError, open_bundle, parse_body, seal_bundle
from doorpi.sync.keys import SiteKey
from sync.corpus_keys import GATE, SITE
from sync.helpers import GateRig, MemorySink

CORPUS = Path(__file__).parent / "corpus"
N = int(os.environ.get("FUZZ_EXAMPLES", "400"))
SEEDS = sorted(CORPUS.iterdir())
BUNDLES = [p.read_bytes() for p in SEEDS if p.name.startswith("bundle-")]
BODIES = [p.read_bytes() for p in SEEDS if p.name.startswith("body-")]


def _is_object(b: bytes) -> bool:
    try:
        return isinstance(json.loads(b), dict)
    except (ValueError, RecursionError):
        return False


OBJECTS = [b for b in BODIES if _is_object(b)]


def _expected(path: Path) -> str:
    return path.stem.split("-", 1)[1].split("-", 1)[0]


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: p.name)
def test_corpus_replays_to_the_recorded_outcome(path: Path) -> None:
    data = path.read_bytes()
    want = _expected(path)
    try:
        if path.name.startswith("bundle-"):
            open_bundle(data, GATE, SITE.public)
        else:
            parse_body(data)
        got = "ok"
    except BundleError as exc:
        got = exc.code
        assert "\n" not in str(exc) and len(str(exc)) < 300
    assert got == want


def _check(fn: Any, data: bytes) -> None:
    try:
        fn(data)
    except BundleError as exc:
        assert exc.code and "\n" not in str(exc)


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "splice"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        else:
            data[pos:] = draw(st.sampled_from(seeds))[pos:]
    return bytes(data)


FUZZ = settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck),
                database=None)  # fmt: skip


@FUZZ
@given(st.one_of(st.binary(max_size=512), mutated(BUNDLES)))
def test_fuzz_open_bundle(data: bytes) -> None:
    _check(lambda d: open_bundle(d, GATE, SITE.public), data)


@FUZZ
@given(st.one_of(st.binary(max_size=512), mutated(BODIES)))
def test_fuzz_parse_body_bytes(data: bytes) -> None:
    _check(parse_body, data)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def edited_body(draw: st.DrawFn) -> bytes:
    """A valid body with one to three values replaced, deleted or added anywhere."""
    doc = json.loads(draw(st.sampled_from(OBJECTS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)[1:]))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(JSON)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JSON)
        else:
            parent.append(draw(JSON))
    return json.dumps(doc).encode()


@FUZZ
@given(edited_body())
def test_fuzz_structured_body(body: bytes) -> None:
    _check(parse_body, body)


def _sealed_body(body: bytes, site: SiteKey, rig: GateRig) -> bytes:
    from nacl.public import SealedBox

    from doorpi.sync.bundle import HEADER, MAGIC

    signed = bytes(site.signing.sign(body))
    sealed = SealedBox(rig.identity.public.box).encrypt(signed)
    return HEADER.pack(MAGIC, 1, bytes.fromhex(rig.identity.fingerprint), len(sealed)) + sealed


def test_fuzz_signed_bodies_through_the_importer(tmp_path: Path) -> None:
    """Signed, sealed, fuzzed bodies imported for real: never a crash, never damage."""
    site = SiteKey(bytes([9]) * 32, "Fuzz Court")
    rig = GateRig(tmp_path, site, MemorySink())
    seen: dict[str, int] = {}

    @settings(max_examples=max(50, N // 4), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(edited_body())
    def one(body: bytes) -> None:
        doc: Any
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):  # address it to this rig so the deep checks run
            doc.update(site=site.fingerprint, gate=rig.identity.fingerprint)
            if isinstance(doc.get("sequence"), int) and not isinstance(doc["sequence"], bool):
                doc["sequence"] = rig.importer.last_sequence() + 1  # reach the transaction
            body = json.dumps(doc).encode()
        before = rig.snapshot()
        rep = rig.importer.import_bytes(_sealed_body(body, site, rig))
        seen[rep.code or "applied"] = seen.get(rep.code or "applied", 0) + 1
        if rep.result == "refused":
            assert rig.snapshot() == before
            assert "\n" not in rep.reason
        assert integrity_check(rig.storage.db) == "ok"

    one()
    assert seen.get("malformed", 0) > 0, seen
    print(f"\nimporter fuzz outcomes: {seen}")


def test_a_sealed_seed_still_opens() -> None:
    """Guards the corpus keys: a fresh bundle sealed to GATE opens with them."""
    body = parse_body(BODIES[[p.name for p in SEEDS if p.name.startswith("body-")].index(
        "body-ok-two-residents.json")])  # fmt: skip
    assert open_bundle(seal_bundle(body, SITE, GATE.public), GATE, SITE.public) == body


def _payload_seed() -> bytes:
    from doorpi.privacy.consent import ConsentRecord
    from doorpi.privacy.share import TemplatePayload
    from sync.helpers import T0, unit

    rec = ConsentRecord(3, "", "2026.2", "cd" * 32, "zh", T0, "resident:card+pin", "gate",
                        T0 + 86400, False, None, True, None, None)  # fmt: skip
    return TemplatePayload(rec, T0 + 86400, unit(5)).to_bytes()


PAYLOAD = _payload_seed()


@settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, len(PAYLOAD)),
    flips=st.lists(st.tuples(st.integers(0, len(PAYLOAD) - 1), st.integers(1, 255)), max_size=6),
    tail=st.binary(max_size=40),
)
def test_template_payload_parser_only_ever_says_share_error(
    cut: int, flips: list[tuple[int, int]], tail: bytes
) -> None:
    """What another gate sealed is signed, but a buggy or stolen gate must not crash this one."""
    from doorpi.privacy.share import ShareError, parse_payload

    data = bytearray(PAYLOAD)
    for i, x in flips:
        data[i] ^= x
    data = data[:cut] + tail
    try:
        p = parse_payload(bytes(data))
    except ShareError as exc:
        assert "\n" not in str(exc)
        return
    assert p.consent.id >= 1 and p.consent.retention_end > p.consent.given_at
    assert p.embedding is None or p.embedding.shape == (128,)
