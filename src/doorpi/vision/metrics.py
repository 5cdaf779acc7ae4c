"""Verification and identification error rates with confidence intervals.

Why exact (Clopper-Pearson) intervals: at the shipped threshold the error
counts are tiny (often zero), where normal approximations claim certainty
the data do not give; the release report (law notes G.23) needs honest
upper bounds.
"""

from __future__ import annotations

import math

import numpy as np


def _binom_cdf(k: int, n: int, p: float) -> float:
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    j = np.arange(k + 1, dtype=np.float64)
    logc = math.lgamma(n + 1) - np.array([math.lgamma(x + 1) + math.lgamma(n - x + 1) for x in j])
    terms = logc + j * math.log(p) + (n - j) * math.log1p(-p)
    m = terms.max()
    return float(min(1.0, math.exp(m) * np.exp(terms - m).sum()))


def clopper_pearson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for k successes out of n."""
    if n <= 0:
        return (0.0, 1.0)
    alpha = 1.0 - conf

    def solve(f, target: float) -> float:  # f decreasing in p
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if f(mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else solve(lambda p: -(1 - _binom_cdf(k - 1, n, p)), -alpha / 2)
    upper = 1.0 if k == n else solve(lambda p: _binom_cdf(k, n, p), alpha / 2)
    return (lower, upper)


def eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """Equal error rate and its threshold (accept when score >= threshold)."""
    g = np.sort(np.asarray(genuine, np.float64))
    i = np.sort(np.asarray(impostor, np.float64))
    t = np.unique(np.concatenate([g, i]))
    far = 1.0 - np.searchsorted(i, t, side="left") / len(i)
    frr = np.searchsorted(g, t, side="left") / len(g)
    k = int(np.argmin(np.abs(far - frr)))
    return float((far[k] + frr[k]) / 2), float(t[k])


def threshold_at_far(impostor: np.ndarray, far: float) -> float:
    """Lowest threshold whose false-accept rate (score >= t) is at most ``far``."""
    i = np.sort(np.asarray(impostor, np.float64))[::-1]
    allowed = math.floor(far * len(i))
    if allowed >= len(i):
        return float(i[-1])
    return float(np.nextafter(i[allowed], np.inf))


def rates_at(genuine: np.ndarray, impostor: np.ndarray, threshold: float) -> dict[str, object]:
    """FAR and FRR at a threshold with counts and 95 % Clopper-Pearson intervals."""
    g = np.asarray(genuine)
    i = np.asarray(impostor)
    fa = int((i >= threshold).sum())
    fr = int((g < threshold).sum())
    return {
        "threshold": threshold,
        "far": fa / len(i),
        "far_count": fa,
        "far_ci95": clopper_pearson(fa, len(i)),
        # One-sided 95 % upper bound (= two-sided 90 % Clopper-Pearson); with no
        # false accept it is 1 - 0.05^(1/n), the exact form of the rule of three.
        "far_upper95_one_sided": clopper_pearson(fa, len(i), 0.90)[1],
        "frr": fr / len(g),
        "frr_count": fr,
        "frr_ci95": clopper_pearson(fr, len(g)),
    }


def pair_scores(embeddings: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All-pairs cosine scores split into genuine and impostor (upper triangle)."""
    x = np.asarray(embeddings, np.float32)
    s = x @ x.T
    iu = np.triu_indices(len(x), 1)
    lab = np.asarray(labels)
    same = (lab[:, None] == lab[None, :])[iu]
    v = s[iu]
    return v[same], v[~same]
