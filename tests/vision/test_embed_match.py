"""SFace scores on real photos against the shipped threshold, and 1:N search."""

from __future__ import annotations

import numpy as np
import pytest

from doorpi.vision.match import SHIPPED_MARGIN, SHIPPED_THRESHOLD, Gallery, cosine

PEOPLE = {
    "Angela_Bassett": ["1.jpg", "2.jpg", "4.jpg"],
    "Barack_Obama": ["1.jpg", "2.jpg", "3.jpg"],
    "Meryl_Streep": ["1.jpg", "2.jpg", "4.jpg"],
    "Al_Sharpton": ["1.jpg", "2.jpg"],
    "Yoko_Ono": ["1.jpg", "2.jpg", "3.jpg"],
}


@pytest.fixture(scope="module")
def embeddings(pipeline, photo) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for person, files in PEOPLE.items():
        for f in files:
            res = pipeline.process(photo(f"{person}/{f}"))
            assert res.ok, f"{person}/{f}: {res.reason}"
            out.setdefault(person, []).append(res.embedding)
    return out


def test_embeddings_are_unit_vectors(embeddings) -> None:
    for vs in embeddings.values():
        for v in vs:
            assert v.shape == (128,) and v.dtype == np.float32
            assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)


def test_genuine_above_and_impostor_below_threshold(embeddings) -> None:
    names = list(embeddings)
    genuine = [
        cosine(a, b)
        for n in names
        for i, a in enumerate(embeddings[n])
        for b in embeddings[n][i + 1 :]
    ]
    impostor = [
        cosine(a, b)
        for i, n in enumerate(names)
        for m in names[i + 1 :]
        for a in embeddings[n]
        for b in embeddings[m]
    ]
    assert len(genuine) == 13 and len(impostor) > 50
    assert min(genuine) > SHIPPED_THRESHOLD
    assert max(impostor) < SHIPPED_THRESHOLD


def test_one_to_n_returns_identity_and_margin(embeddings) -> None:
    g = Gallery()
    for person, vs in embeddings.items():
        g.add(person, vs[0])
    for person, vs in embeddings.items():
        m = g.search(vs[1])
        assert m.identity == person
        assert m.margin > SHIPPED_MARGIN
        assert m.accepted(SHIPPED_THRESHOLD, SHIPPED_MARGIN)
    # Remove a resident: her probe must no longer be accepted as anyone.
    assert g.remove("Meryl_Streep") == 1
    m = g.search(embeddings["Meryl_Streep"][1])
    assert m.identity != "Meryl_Streep"
    assert not m.accepted(SHIPPED_THRESHOLD, SHIPPED_MARGIN)


def test_int8_gallery_agrees_with_float(embeddings) -> None:
    rng = np.random.default_rng(1)
    ids = [f"x{i}" for i in range(3000)] + list(embeddings)
    mat = np.vstack(
        [rng.standard_normal((3000, 128)).astype(np.float32)]
        + [vs[0][None] for vs in embeddings.values()]
    )
    f32, i8 = Gallery(np.float32), Gallery(np.int8)
    f32.set(ids, mat)
    i8.set(ids, mat)
    for person, vs in embeddings.items():
        a, b = f32.search(vs[2 % len(vs)]), i8.search(vs[2 % len(vs)])
        assert a.identity == b.identity == person
        assert abs(a.score - b.score) < 0.01
        assert abs(a.margin - b.margin) < 0.02


def test_margin_counts_only_other_identities() -> None:
    g = Gallery()
    v = np.zeros(128, np.float32)
    v[0] = 1
    w = np.zeros(128, np.float32)
    w[1] = 1
    g.set(["a", "a", "b"], np.stack([v, v * 0.99 + w * 0.01, w]))
    m = g.search(v)
    assert m.identity == "a"
    assert m.second == pytest.approx(0.0, abs=1e-6)  # b, not a's second template
