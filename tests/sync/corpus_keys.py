"""Fixed keys for the fuzz corpus, so the stored bundles open in every test run.

Test-only keys: never use them on a gate.
"""

from __future__ import annotations

from nacl.public import PrivateKey
from nacl.signing import SigningKey

from doorpi.sync.keys import GateIdentity, SiteKey

GATE = GateIdentity(PrivateKey(bytes([1]) * 32), SigningKey(bytes([2]) * 32), "corpus-gate")
SITE = SiteKey(bytes([3]) * 32, "Corpus Court")
PEER = GateIdentity(PrivateKey(bytes([4]) * 32), SigningKey(bytes([5]) * 32), "corpus-peer")
