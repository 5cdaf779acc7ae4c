"""Error-rate arithmetic used by ``doorpi eval faces`` (the release report's numbers)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from doorpi.vision.metrics import clopper_pearson, eer, pair_scores, rates_at, threshold_at_far


def test_clopper_pearson_known_values() -> None:
    lo, hi = clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.30850, abs=1e-4)  # 1 - 0.025**(1/10)
    lo, hi = clopper_pearson(5, 10)
    assert lo == pytest.approx(0.18709, abs=1e-4) and hi == pytest.approx(0.81291, abs=1e-4)
    lo, hi = clopper_pearson(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.69150, abs=1e-4)


def test_eer_and_threshold_at_far() -> None:
    genuine = np.array([0.9, 0.8, 0.7, 0.35])
    impostor = np.concatenate([np.linspace(0.0, 0.3, 996), [0.4, 0.5, 0.6, 0.75]])
    rate, thr = eer(genuine, impostor)
    # at 0.35: FAR 4/1000, FRR 0/4 -- the closest the two rates get
    assert thr == pytest.approx(0.35) and rate == pytest.approx(0.002)
    t = threshold_at_far(impostor, 1e-3)  # one impostor of 1000 may pass
    assert 0.6 < t <= 0.75 + 1e-9
    assert (impostor >= t).sum() == 1
    r = rates_at(genuine, impostor, 0.76)
    assert r["far_count"] == 0 and r["frr_count"] == 2  # 0.7 and 0.35
    assert r["far_ci95"][0] == 0.0 and 0.003 < r["far_ci95"][1] < 0.004


def test_pair_scores_split_by_label() -> None:
    x = np.eye(3, dtype=np.float32)
    x = np.vstack([x[0], x[0], x[1]])
    gen, imp = pair_scores(x, ["a", "a", "b"])
    assert gen.tolist() == [1.0] and sorted(imp.tolist()) == [0.0, 0.0]


def _tail_ge(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed directly (not the module's code)."""
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


@pytest.mark.parametrize(("misses", "n"), [(0, 40), (2, 40), (7, 300), (40, 40)])
def test_frr_interval_is_the_exact_binomial_interval(misses: int, n: int) -> None:
    """A zeroed, collapsed or mis-sized FRR interval fails: each end is checked
    against the binomial tails it is defined by (Clopper & Pearson 1934), summed
    here independently, and must hold the observed rate."""
    genuine = np.array([0.2] * misses + [0.9] * (n - misses))
    impostor = np.linspace(0.0, 0.3, 1000)
    r = rates_at(genuine, impostor, 0.45)
    assert r["frr_count"] == misses and r["frr"] == misses / n
    lo, hi = r["frr_ci95"]
    assert 0.0 <= lo <= misses / n <= hi <= 1.0 and lo < hi
    if misses == 0:
        assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / n), abs=1e-6)
    else:
        assert _tail_ge(misses, n, lo) == pytest.approx(0.025, abs=1e-6)
    if misses < n:
        assert 1 - _tail_ge(misses + 1, n, hi) == pytest.approx(0.025, abs=1e-6)
    else:
        assert hi == 1.0
