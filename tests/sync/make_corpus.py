"""Regenerate the seed corpus in tests/sync/corpus/ (run from the repository root).

File names say what the parser must answer: ``ok-*`` opens, ``<code>-*`` is refused
with that code. ``body-*`` files are signed JSON bodies (parse_body); ``bundle-*``
files are whole bundles sealed to the corpus gate (open_bundle).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from doorpi.sync.bundle import CardKeyEntry, EnrollmentBundle, FaceEvent, seal_bundle
from doorpi.sync.templates import CARD_KEY_LABEL, seal_template
from sync.corpus_keys import GATE, PEER, SITE
from sync.helpers import resident, template

CORPUS = Path(__file__).parent / "corpus"


def base(seq: int = 1, **kw: object) -> EnrollmentBundle:
    people = kw.pop("residents", (resident("a-1", 1, SITE), resident("b-2", 2, SITE, pin=None)))
    return EnrollmentBundle(SITE.fingerprint, GATE.fingerprint, seq, 1_780_000_000.0,
                            "Corpus Court", tuple(people), **kw)  # type: ignore[arg-type]  # fmt: skip


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    good = base()
    shared = base(residents=(resident("a-1", 1, SITE, share_with_site_gates=True),),
                  templates=(template("a-1", PEER, GATE),), peers=(PEER.public,))  # fmt: skip
    withdrawn = base(3, face_withdrawals=(FaceEvent("a-1", 1_779_999_000.0),))
    suspended = base(5, face_suspensions=(FaceEvent("b-2", 1_779_999_500.0),))
    sealed_key = seal_template(PEER, GATE.public, CARD_KEY_LABEL, bytes(range(32)))
    card_key = base(4, peers=(PEER.public,), card_key_gate=PEER.fingerprint,
                    card_key=CardKeyEntry(PEER.fingerprint, sealed_key))  # fmt: skip
    bodies = {
        "ok-two-residents": good.to_body(),
        "ok-tombstones": base(2, residents=(), tombstones=("a-1", "b-2")).to_body(),
        "ok-template": shared.to_body(),
        "malformed-not-json": b'{"format": ',
        "malformed-deep": b"[" * 5000 + b"]" * 5000,
        "malformed-dup-key": base(residents=(resident("a-1", 1, SITE),) * 2).to_body(),
        "no_consent-template": replace(shared, residents=(resident("a-1", 1, SITE),)).to_body(),
        "unknown_version-v2": good.to_body().replace(b'"version":1', b'"version":2'),
        "ok-face-withdrawals": withdrawn.to_body(),
        "ok-face-suspensions": suspended.to_body(),
        "malformed-suspension-resident": suspended.to_body().replace(
            b'"resident":"b-2"}', b'"resident":"B 2"}'
        ),
        "ok-card-key": card_key.to_body(),
        "malformed-card-key-not-from-key-gate": replace(
            card_key, card_key_gate=GATE.fingerprint
        ).to_body(),
        "malformed-withdrawal-at": withdrawn.to_body().replace(b'"at":1779999000.0', b'"at":-1'),
    }
    for name, body in bodies.items():
        (CORPUS / f"body-{name}.json").write_bytes(body)
    sealed = seal_bundle(good, SITE, GATE.public)
    bundles = {
        "ok-two-residents": sealed,
        "truncated-half": sealed[: len(sealed) // 2],
        "truncated-header": sealed[:20],
        "bad_magic-zip": b"PK\x03\x04" + sealed[4:],
        "unknown_version-7": sealed[:8] + b"\x00\x07" + sealed[10:],
        "undecryptable-flipped": sealed[:-1] + bytes([sealed[-1] ^ 1]),
        "wrong_gate-other": sealed[:10] + bytes(16) + sealed[26:],
    }
    for name, data in bundles.items():
        (CORPUS / f"bundle-{name}.bin").write_bytes(data)
    print(json.dumps(sorted(p.name for p in CORPUS.iterdir()), indent=1))


if __name__ == "__main__":
    main()
