"""The vision engine matches against the encrypted vault through `VaultGallery`."""

from __future__ import annotations

import numpy as np
from privacy_support import DAY, enrol, near, unit_vector

from doorpi.privacy.gallery import VaultGallery
from doorpi.vision.engine import PipelineFaceEngine


class FakePipeline:
    """Stands in for the camera + model: each 'frame' is already an embedding."""

    class _Res:
        def __init__(self, e: np.ndarray) -> None:
            self.embedding, self.reason, self.ok = e, "ok", True
            self.quality = None  # FaceResult.quality: no quality measures for an embedding

    def process(self, frame: np.ndarray, lores: object = None) -> object:
        return self._Res(frame)


def test_engine_matches_through_the_vault_and_stops_after_withdrawal(
    privacy, storage, alice, clock
):
    bob = storage.residents.add("Bob", clock(), keypad_id="202").id
    ea, eb = unit_vector(1), unit_vector(2)
    enrol(privacy, alice, ea)
    enrol(privacy, bob, eb, retention_days=10)
    gallery = VaultGallery(privacy.vault)
    engine = PipelineFaceEngine(FakePipeline(), gallery, threshold=0.45, margin=0.05)
    out = engine.process(near(ea, 0.05, 1), clock())
    assert (out.state, out.resident_id) == ("matched", alice)
    engine.begin(bob)  # card tap by Bob, then face 1:1
    assert engine.process(near(eb, 0.05, 2), clock()).resident_id == bob
    engine.end()
    assert sorted(gallery.ids) == sorted([str(alice), str(bob)])
    privacy.withdraw(alice, by="resident", channel="gate")
    assert engine.process(near(ea, 0.05, 3), clock()).state != "matched"
    assert gallery.ids == [str(bob)]
    clock.advance(10 * DAY)  # Bob's retention ends: no match even before the sweeper
    engine.begin(bob)
    assert engine.process(eb, clock()).state != "matched"
    assert gallery.search(eb).identity is None


def test_disabled_resident_is_not_in_the_gallery(privacy, storage, alice, clock):
    enrol(privacy, alice, unit_vector(3))
    gallery = VaultGallery(privacy.vault)
    assert len(gallery) == 1
    storage.residents.update(alice, clock(), active=False)
    assert len(gallery) == 0
